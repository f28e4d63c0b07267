#pragma once
// A work queue: LPUSH producers (producer.hpp), BRPOP consumers, at most once.
//
//   corvo::queue::work_queue coupons(redis, options, handlers);   // options.name = "coupons"
//   co_await coupons.run();                                       // until cancelled
//
// Promise: AT MOST ONCE. An item is removed from Redis when it is popped, before its handler
// runs; if the process dies (kill -9, a crash, a power cut) between the pop and the end of
// the handler, the item is gone. Use it for work whose loss is acceptable (a cache refresh, a
// notification that is re-sent anyway); use reliable_queue when every item must be handled.
// (queue_work_queue_test proves both halves: handled once while the consumer lives, lost when
// it is killed.)
//
// Consumption: a blocking BRPOP on a dedicated connection (redis::client::dedicated) waits
// for the first item, then non-blocking `RPOP key count` takes up to `batch` more at once,
// never more than the free handler slots (max_in_flight). Handlers run in parallel, in
// coroutines on the caller's executor. A handler that fails, or an item that does not decode
// (permanent_error), is logged and written to the queue's dead letters with the reason; the
// consumer goes on. No retries: the item has left the queue.
//
// Stopping (cancel the coroutine awaiting run()): no new pop starts; the BRPOP in progress is
// not cancelled (cancelling it could lose the item it pops) but returns within block_timeout
// and its item is handled; running handlers get drain_timeout to finish, then are cancelled
// and their items pushed back to the queue's tail (consumed next). Then run() throws
// operation_aborted. A stop while Redis does not answer waits block_timeout + 2 s for the
// pop, then abandons it (an item it popped meanwhile is lost).

#include <boost/asio/awaitable.hpp>
#include <corvo/queue/handler.hpp>
#include <corvo/queue/options.hpp>
#include <corvo/redis/client.hpp>
#include <memory>

namespace corvo::queue {

namespace detail {
struct consumer_engine;
}

class work_queue {
 public:
  /// Consumes queue `options.name` through `redis` (which must outlive this object; it is
  /// used for non-blocking commands, and a dedicated client is made from it for BRPOP).
  work_queue(redis::client& redis, queue_options options, handler_type handler);
  /// Destroying it while run() is active stops that run as a cancellation would: the run
  /// ends in the background (this object's state is kept until it has) and completes with
  /// operation_aborted; `redis` must outlive it. A run() called but not begun yet ends at
  /// once with operation_aborted.
  ~work_queue();
  work_queue(const work_queue&) = delete;
  work_queue& operator=(const work_queue&) = delete;

  /// Consumes until cancelled (see the file comment); throws operation_aborted then.
  asio::awaitable<void> run();

  const queue_stats& stats() const noexcept;
  const queue_options& options() const noexcept;

 private:
  // Shared with an active run(), which keeps it alive until it ends.
  std::shared_ptr<detail::consumer_engine> engine_;
};

}  // namespace corvo::queue
