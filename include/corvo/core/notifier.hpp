#pragma once
// A wake-up signal for coroutines on one executor: the coroutine form of a condition
// variable. A waiter checks its condition, waits, and checks again:
//
//   while (queue.empty()) {
//     co_await queue_changed.wait();
//   }
//   ...                       // elsewhere, after changing the queue:
//   queue_changed.notify_one();
//
// Nothing is remembered: a notification with nobody waiting is lost, which is why the
// condition is checked before waiting. Not thread-safe: waiters and notifiers run on the
// executor the notifier was made with (one io_context thread or strand).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>

namespace corvo {

namespace asio = boost::asio;

class notifier {
 public:
  explicit notifier(const asio::any_io_executor& executor);

  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  /// Suspends until notify_all() or notify_one() picks this waiter. Cancellation (any
  /// type): stops waiting and throws system_error(operation_aborted).
  asio::awaitable<void> wait();

  /// Wakes every coroutine waiting now. Cheap when there is none.
  void notify_all() noexcept;

  /// Wakes one coroutine waiting now, if any.
  void notify_one() noexcept;

  /// Coroutines in wait(), including those woken but not yet resumed.
  std::size_t waiters() const noexcept { return waiters_; }

 private:
  asio::steady_timer timer_;  // never expires: waiting is async_wait, waking is cancel
  std::size_t waiters_ = 0;
};

}  // namespace corvo
