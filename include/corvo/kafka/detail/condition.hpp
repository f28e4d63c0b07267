#pragma once
// Internal: a condition variable for coroutines on one thread. Waiters re-check their
// predicate after every wake-up; notify_all() wakes all of them.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <list>

namespace corvo::kafka::detail {

class condition {
 public:
  /// Waits until notify_all() or `deadline`, whichever comes first. Cancellation
  /// (terminal): throws system_error(operation_aborted). Not thread-safe.
  boost::asio::awaitable<void> wait_until(std::chrono::steady_clock::time_point deadline) {
    namespace asio = boost::asio;
    // (Named: GCC 12 may destroy a temporary of a co_await expression twice.)
    const auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, deadline);
    const auto it = waiters_.insert(waiters_.end(), &timer);
    boost::system::error_code ec;
    std::exception_ptr failure;
    try {
      // (Asio 1.26 throws here at once when the coroutine was cancelled before.)
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    } catch (...) {
      failure = std::current_exception();
    }
    waiters_.erase(it);
    if (failure) {
      std::rethrow_exception(failure);
    }
    const auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted, "condition::wait_until");
    }
  }

  void notify_all() noexcept {
    for (auto* timer : waiters_) {
      timer->cancel();
    }
  }

 private:
  std::list<boost::asio::steady_timer*> waiters_;
};

}  // namespace corvo::kafka::detail
