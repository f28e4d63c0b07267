#pragma once
// Runs an awaitable to completion on an io_context and hands back its result or exception.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace corvo::test {

struct nothing_to_stop {
  void operator()() const noexcept {}
};

/// Spawns `operation` on `context`, runs the context until it has no more work, and returns
/// the operation's value (or rethrows its exception). Throws if the operation never
/// completed (the context ran out of work first). `stop_background` runs as soon as the
/// operation completes, failed or not: it stops what the test started beside it (e.g.
/// cancels a connection's run()), so a failed assertion cannot leave the context running.
template <class T, class StopBackground = nothing_to_stop>
T run(boost::asio::io_context& context, boost::asio::awaitable<T> operation,
      StopBackground stop_background = {}) {
  std::exception_ptr failure;
  bool done = false;
  if constexpr (std::is_void_v<T>) {
    boost::asio::co_spawn(context, std::move(operation), [&](std::exception_ptr e) {
      failure = e;
      done = true;
      stop_background();
    });
    context.restart();
    context.run();
    if (!done) throw std::logic_error("test::run: the coroutine never completed");
    if (failure) std::rethrow_exception(failure);
  } else {
    std::optional<T> value;
    boost::asio::co_spawn(context, std::move(operation), [&](std::exception_ptr e, T v) {
      failure = e;
      if (!e) value.emplace(std::move(v));
      done = true;
      stop_background();
    });
    context.restart();
    context.run();
    if (!done) throw std::logic_error("test::run: the coroutine never completed");
    if (failure) std::rethrow_exception(failure);
    return std::move(*value);
  }
}

}  // namespace corvo::test
