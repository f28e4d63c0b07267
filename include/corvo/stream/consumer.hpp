#pragma once
// A member of a Redis Streams consumer group: reads, dispatches to handlers in parallel,
// acknowledges, retries, recovers pending entries and dead-letters what cannot be handled.
//
//   stream::typed_handlers handlers;
//   handlers.on<order_created>("order.created", store_order);
//   stream::consumer_options o;
//   o.group = "billing";
//   o.streams = {"{orders}:events"};
//   stream::consumer orders(redis, o);          // a redis::client, running
//   co_await orders.run(handlers);              // until cancelled
//
// Reading: per stream, one reader on its own dedicated connection (redis::client::dedicated,
// never the shared pipeline). It creates the group when missing (XGROUP CREATE … MKSTREAM
// from start_id; BUSYGROUP is fine), then first re-reads this consumer's own pending
// entries (XREADGROUP … 0: a read cancelled earlier may have delivered entries to it), then
// new ones (XREADGROUP … BLOCK … >), at most `batch` per read and never more than there
// are free slots: while max_in_flight entries are held, reading pauses (back-pressure).
//
// Handling: up to max_in_flight handlers run at once; with ordered_by_key, entries of one
// `key` field run one after the other in stream order. Success → the id is acknowledged
// (XACK, batched per stream: the ids finished while one XACK is on the wire go in the next,
// up to ack_batch). Failure → the entry stays pending, unacknowledged; after a backoff the
// consumer takes it again (XCLAIM, which counts the delivery) and retries. An entry is
// dead-lettered — appended to dead_letter_key(stream) with the layout of dead_letter.hpp
// and acknowledged in one Lua script, so it is neither lost nor doubled — when
//   - its handler failed on its max_deliveries-th delivery (reason: the last failure),
//   - it was delivered more than max_deliveries times (reason says so; not run again),
//   - the handler threw stream::permanent_error: no `type`, an unknown type, data that does
//     not decode (typed_handlers), or the handler's own.
// An entry deleted or trimmed while pending is acknowledged (cleared from the group).
//
// Recovery: every claim_interval, entries of any consumer of the group pending longer than
// min_idle are taken over with XAUTOCLAIM, the cursor carried from call to call until it
// returns 0-0, so every pending entry is reached (XAUTOCLAIM also clears deleted ones).
// Consumers of the group idle longer than delete_idle_consumers_after with no pending
// entries are removed (XGROUP DELCONSUMER, in a script that checks both atomically).
// NOGROUP (Redis restarted without persistence, stream deleted): the group is re-created
// from start_id, logged, and reading goes on. Redis errors and connection losses are
// logged and retried with backoff; a bad entry, a handler exception or a Redis error never
// ends run().
//
// Stopping (terminal cancellation of the coroutine awaiting run()): the readers stop at
// once (a blocking read is abandoned, not awaited); handlers in flight get drain_timeout to
// finish (entries waiting to retry are given up at once), then the rest are cancelled;
// what finished is acknowledged; everything else stays pending for this consumer's next
// start or for another consumer's XAUTOCLAIM. Then run() throws operation_aborted.
//
// Delivery is at least once: an entry runs again only when its consumer stopped or died
// between running it and acknowledging it, or when it was pending longer than min_idle.
//
// Threading: like redis::client, one executor; handlers run on it.

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer_options.hpp>
#include <corvo/stream/entry.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace corvo::stream {

namespace asio = boost::asio;

/// Counters of one consumer since construction.
struct consumer_stats {
  std::uint64_t read = 0;               ///< entries received by XREADGROUP (own pending included)
  std::uint64_t reclaimed = 0;          ///< entries taken over by XAUTOCLAIM
  std::uint64_t handled = 0;            ///< handler runs that succeeded
  std::uint64_t failed = 0;             ///< handler runs that failed
  std::uint64_t retried = 0;            ///< failed entries taken again for a retry
  std::uint64_t acked = 0;              ///< ids acknowledged by XACK
  std::uint64_t dead_lettered = 0;      ///< entries moved to the dead-letter stream
  std::uint64_t deleted_cleared = 0;    ///< pending entries found deleted/trimmed and cleared
  std::uint64_t groups_created = 0;     ///< groups created (first start or after NOGROUP)
  std::uint64_t groups_recreated = 0;   ///< of which after NOGROUP
  std::uint64_t consumers_removed = 0;  ///< idle consumers removed from the group
  std::uint64_t redis_errors = 0;       ///< Redis calls that failed (and were retried)
};

class consumer {
 public:
  /// A handler: asio::awaitable<void>(const entry&); typed_handlers is one. The entry
  /// outlives the handler's awaitable. Throwing stream::permanent_error dead-letters the
  /// entry at once; any other exception is a failure (retried).
  using handler = std::function<asio::awaitable<void>(const entry&)>;
  /// Called on the consumer's executor right before a handler runs (latency, tracing).
  using start_observer = std::function<void(const entry&)>;

  /// `redis` must outlive the consumer and be running. Throws std::invalid_argument when
  /// the group or the streams are missing or a count is 0.
  consumer(redis::client& redis, consumer_options options);
  /// Destroying it while run() is active stops that run as a cancellation would (handlers
  /// in flight get drain_timeout, what finished is acknowledged): the run ends in the
  /// background (this object's state is kept until it has) and completes with
  /// operation_aborted; `redis` must outlive that run. A run() called but not begun yet
  /// ends at once with operation_aborted.
  ~consumer();
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  /// Runs until cancelled (see the file comment), then throws operation_aborted. One run()
  /// at a time (std::logic_error otherwise); it may be run again after it ended.
  asio::awaitable<void> run(handler h);

  void on_start(start_observer observer);

  /// This consumer's name in the group.
  const std::string& name() const noexcept;
  const consumer_options& options() const noexcept;
  const consumer_stats& stats() const noexcept;

 private:
  struct impl;
  // Shared with an active run(), which keeps it alive until it ends.
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::stream
