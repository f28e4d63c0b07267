#pragma once
// Deadlines as cancellation: race an operation against a timer.

#include <corvo/core/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <type_traits>

namespace corvo {

namespace asio = boost::asio;

/// Runs `operation`; if it has not completed after `timeout`, cancels it (terminal), waits
/// for it to finish and throws system_error(corvo::error::timed_out). The operation's own
/// result or exception is returned/rethrown when it completes first (a failure is reported
/// at once, not after the timeout). Cancellation of the caller is forwarded to the
/// operation and rethrown as its exception.
template <class T>
asio::awaitable<T> with_timeout(asio::awaitable<T> operation,
                                std::chrono::steady_clock::duration timeout) {
  namespace exp = asio::experimental;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, timeout);
  auto group = exp::make_parallel_group(
      asio::co_spawn(executor, std::move(operation), asio::deferred),
      timer.async_wait(asio::deferred));
  if constexpr (std::is_void_v<T>) {
    auto [order, failure, timer_ec] =
        co_await group.async_wait(exp::wait_for_one(), asio::use_awaitable);
    if (order[0] == 1 && !timer_ec) {
      throw boost::system::system_error(error::timed_out);
    }
    if (failure) {
      std::rethrow_exception(failure);
    }
  } else {
    auto [order, failure, value, timer_ec] =
        co_await group.async_wait(exp::wait_for_one(), asio::use_awaitable);
    if (order[0] == 1 && !timer_ec) {
      throw boost::system::system_error(error::timed_out);
    }
    if (failure) {
      std::rethrow_exception(failure);
    }
    co_return std::move(value);
  }
}

/// with_timeout() against an absolute deadline.
template <class T>
asio::awaitable<T> with_deadline(asio::awaitable<T> operation,
                                 std::chrono::steady_clock::time_point deadline) {
  return with_timeout(std::move(operation), deadline - std::chrono::steady_clock::now());
}

}  // namespace corvo
