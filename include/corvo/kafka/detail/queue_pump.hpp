#pragma once
// Serves librdkafka queues on the io_context: a drain function runs on every eventfd
// wake-up (queue_wakeup) and every `interval` as a safety net, until stop(). Shared by the
// producer (delivery reports) and the consumer (rebalances, messages).

#include <corvo/kafka/detail/native.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace corvo::kafka::detail {

class queue_pump {
 public:
  queue_pump(const asio::any_io_executor& executor, std::chrono::milliseconds interval)
      : timer_(executor), interval_(interval) {}

  /// Arms both waits. `owner` is kept alive by every pending wait (it owns what `drain`
  /// touches, and this pump); `wakeup` must outlive the pump's use of it.
  void start(queue_wakeup& wakeup, std::shared_ptr<void> owner, std::function<void()> drain);

  /// Closes the wake-up descriptor, forgets it, and cancels the timer; no drain runs
  /// afterwards. Safe to call again.
  void stop() noexcept;

  /// True before start() and after stop().
  bool stopped() const noexcept { return stopped_; }

 private:
  struct wakeup_handler;
  struct timer_handler;
  void arm_wakeup(std::shared_ptr<void> owner);
  void arm_timer(std::shared_ptr<void> owner);

  asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  queue_wakeup* wakeup_ = nullptr;
  std::function<void()> drain_;
  bool stopped_ = true;
};

}  // namespace corvo::kafka::detail
