#pragma once
// A reliable queue: items move atomically from the queue to this consumer's processing
// list, stay there while they are handled, and leave it only when settled. No item is lost
// when a consumer is killed.
//
//   corvo::queue::reliable_queue coupons(redis, options, handlers);  // options.name = "coupons"
//   co_await coupons.run();                                          // until cancelled
//
// Taking: `BLMOVE queue processing RIGHT LEFT` on a dedicated connection waits for the first
// item; then a script (RPOP count + LPUSH, atomic) moves up to `batch` more at once, never
// more than the free handler slots (max_in_flight). Handlers run in parallel.
//
// Settling (keys and envelope: item.hpp; scripts: src/queue/scripts.hpp):
// - success: ack = LREM of the item's exact bytes from the processing list, batched (one
//   script call acks every item finished since the last call). Envelope ids make the bytes
//   unique, so an ack never removes a look-alike;
// - failure: the item goes to the back of the line (LPUSH) with attempts + 1, or to the
//   dead letters, with the handler's error as the reason, once it has had max_attempts
//   deliveries; permanent_error (undecodable, unknown type) dead-letters it at once. The
//   consumer goes on in every case: a poison item never stops it.
// - the consumer dies: its heartbeat key (renewed every heartbeat_interval, TTL
//   heartbeat_ttl) expires and the reaper (reaper.hpp; any consumer runs one) moves its
//   items back to the queue with attempts + 1, or dead-letters those whose attempts are used
//   up (a poison item that crashes its consumer ends there too).
// Attempts live in the item's envelope, so consumer and reaper count the same way and
// nothing else must be cleaned up. The promise is AT LEAST ONCE: an item is handled again
// when its consumer died (or was declared dead: heartbeat not renewed for heartbeat_ttl)
// after taking it and before its ack reached Redis. An ack or failure refused because the
// reaper took the item first is counted in stats().stale.
//
// Lost replies: when a take or ack fails on the connection (the reply of a move may be lost
// with the item already in the processing list), the consumer re-reads its processing list
// and handles the items it does not know (stats().adopted). A consumer with a fixed id
// (queue_options::consumer) recovers the items of its previous run at start, like the reaper.
//
// Stopping (cancel the coroutine awaiting run()): no new take starts; the BLMOVE in progress
// returns within block_timeout; running handlers get drain_timeout, then are cancelled and
// their items handed back to the queue's tail uncounted (consumed next); finished items are
// acked; the heartbeat key is deleted (so a reaper takes anything left at once) and the
// consumer leaves the consumers set when its processing list is empty. Then run() throws
// operation_aborted. The whole stop is bounded by drain_timeout, its Redis waits included
// (the pop, the last acks: 100 ms at least; signing off: skipped when the acks did not
// finish): a stop while Redis is down or hung (a health supervisor cancelling the consumer)
// ends in time and loses nothing: an item the abandoned BLMOVE moved is in the processing list
// (recovered at the next start of a fixed consumer id, or by a reaper), an item not acked
// runs again.

#include <boost/asio/awaitable.hpp>
#include <corvo/queue/handler.hpp>
#include <corvo/queue/options.hpp>
#include <corvo/queue/reaper.hpp>
#include <corvo/redis/client.hpp>
#include <memory>
#include <string>

namespace corvo::queue {

namespace detail {
struct consumer_engine;
}

class reliable_queue {
 public:
  /// Consumes queue `options.name` through `redis` (which must outlive this object; a
  /// dedicated client is made from it for BLMOVE). An empty options.consumer gets
  /// queue_options::generated_consumer_id().
  reliable_queue(redis::client& redis, queue_options options, handler_type handler);
  /// Destroying it while run() is active stops that run as a cancellation would: the run
  /// ends in the background (this object's state is kept until it has) and completes with
  /// operation_aborted; `redis` must outlive it. A run() called but not begun yet ends at
  /// once with operation_aborted.
  ~reliable_queue();
  reliable_queue(const reliable_queue&) = delete;
  reliable_queue& operator=(const reliable_queue&) = delete;

  /// Consumes until cancelled (see the file comment); throws operation_aborted then.
  asio::awaitable<void> run();

  /// This consumer's id (the suffix of its processing and heartbeat keys).
  const std::string& consumer() const noexcept;
  const queue_stats& stats() const noexcept;
  const queue_options& options() const noexcept;
  /// What this consumer's reaper recovered so far (zero when options.reap is off).
  const reap_result& reaped() const noexcept;

 private:
  // Shared with an active run(), which keeps it alive until it ends.
  std::shared_ptr<detail::consumer_engine> engine_;
};

}  // namespace corvo::queue
