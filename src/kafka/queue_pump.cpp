#include <corvo/kafka/detail/queue_pump.hpp>

namespace corvo::kafka::detail {

struct queue_pump::wakeup_handler {
  queue_pump* pump;
  std::shared_ptr<void> owner;
  void operator()(boost::system::error_code ec) const {
    if (ec || pump->stopped_) {
      return;
    }
    pump->wakeup_->consume();
    pump->drain_();
    // A drain resumes coroutines inline; one of them may have stopped the pump.
    if (!pump->stopped_) {
      pump->arm_wakeup(owner);
    }
  }
};

struct queue_pump::timer_handler {
  queue_pump* pump;
  std::shared_ptr<void> owner;
  void operator()(boost::system::error_code ec) const {
    if (ec || pump->stopped_) {
      return;
    }
    pump->drain_();
    if (!pump->stopped_) {
      pump->arm_timer(owner);
    }
  }
};

void queue_pump::start(queue_wakeup& wakeup, std::shared_ptr<void> owner,
                       std::function<void()> drain) {
  wakeup_ = &wakeup;
  drain_ = std::move(drain);
  stopped_ = false;
  arm_wakeup(owner);
  arm_timer(std::move(owner));
}

void queue_pump::stop() noexcept {
  stopped_ = true;
  if (wakeup_ != nullptr) {
    wakeup_->close();
    wakeup_ = nullptr;  // its owner may destroy it now; a second stop() must not touch it
  }
  timer_.cancel();
}

void queue_pump::arm_wakeup(std::shared_ptr<void> owner) {
  wakeup_->descriptor().async_wait(asio::posix::stream_descriptor::wait_read,
                                   wakeup_handler{this, std::move(owner)});
}

void queue_pump::arm_timer(std::shared_ptr<void> owner) {
  timer_.expires_after(interval_);
  timer_.async_wait(timer_handler{this, std::move(owner)});
}

}  // namespace corvo::kafka::detail
