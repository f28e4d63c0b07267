#pragma once
// Group commit in order, shared by the samples: callers submit items and wait; one flusher
// takes everything submitted since its last flush as one batch and hands it to `flush` (one
// LPUSH, one Kafka send burst, one database transaction). Batches are flushed one after the other,
// in submission order, so the order of the items is kept end to end. While a flush runs, new items
// gather into the next batch: the busier it is, the bigger the batches.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/notifier.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace corvo::samples {

namespace asio = boost::asio;

template <class T>
class batcher {
 public:
  /// Flushes one batch; throws to fail every item of it.
  using flush_fn = std::function<asio::awaitable<void>(std::vector<T>&)>;

  batcher(asio::any_io_executor executor, std::size_t max_batch, flush_fn flush)
      : executor_(executor),
        max_batch_(max_batch),
        flush_(std::move(flush)),
        wake_(executor),
        open_(std::make_shared<batch>(executor)) {}

  /// Adds `item` to the open batch (synchronously, before the first suspension: the order
  /// of submit() calls is the order of the items) and completes once its batch was flushed;
  /// throws what the flush threw. Cancellation: stops waiting (the batch is still flushed).
  asio::awaitable<void> submit(T item) {
    auto mine = open_;
    mine->items.push_back(std::move(item));
    if (mine->items.size() >= max_batch_) {
      open_ = std::make_shared<batch>(executor_);
      full_.push_back(mine);
    }
    wake_.notify_all();
    while (!mine->finished) {
      co_await mine->done.wait();
    }
    if (mine->error) {
      std::rethrow_exception(mine->error);
    }
  }

  /// The flusher: flushes batches in order until cancelled. Run it once, for as long as
  /// anything submits.
  asio::awaitable<void> run() {
    for (;;) {
      auto cancelled = co_await asio::this_coro::cancellation_state;
      if (cancelled.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
      std::shared_ptr<batch> next;
      if (!full_.empty()) {
        next = full_.front();
        full_.erase(full_.begin());
      } else if (!open_->items.empty()) {
        next = open_;
        open_ = std::make_shared<batch>(executor_);
      } else {
        co_await wake_.wait();
        continue;
      }
      try {
        co_await flush_(next->items);
        ++batches_;
      } catch (...) {
        next->error = std::current_exception();
      }
      next->finished = true;
      next->done.notify_all();
    }
  }

  std::uint64_t batches() const noexcept { return batches_; }

 private:
  struct batch {
    explicit batch(asio::any_io_executor executor) : done(executor) {}
    std::vector<T> items;
    corvo::notifier done;  // notified when the batch was flushed
    bool finished = false;
    std::exception_ptr error;
  };

  asio::any_io_executor executor_;
  std::size_t max_batch_;
  flush_fn flush_;
  corvo::notifier wake_;  // notified when something was submitted
  std::shared_ptr<batch> open_;
  std::vector<std::shared_ptr<batch>> full_;
  std::uint64_t batches_ = 0;
};

}  // namespace corvo::samples
