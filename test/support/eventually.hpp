#pragma once
// Waits in a coroutine until a condition holds: tests wait for the condition they assert,
// never for a fixed time they hope is long enough.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <functional>

namespace corvo::test {

/// Polls `done` every `poll` until it holds (true) or `limit` has passed (false).
inline boost::asio::awaitable<bool> eventually(
    std::function<bool()> done, std::chrono::steady_clock::duration limit,
    std::chrono::steady_clock::duration poll = std::chrono::milliseconds{10}) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      co_return false;
    }
    co_await corvo::sleep_for(poll);
  }
  co_return true;
}

}  // namespace corvo::test
