#pragma once
// A Kafka consumer group member whose message handlers are coroutines on an io_context.
//
//   corvo::kafka::consumer consumer(executor, corvo::kafka::client_config::from(cfg),
//                                   {.topics = {"orders"}, .dead_letter_topic = "orders.dlq"});
//   co_await consumer.run(handle_order);   // until stop() or cancellation, then closes
//
// Delivery guarantee: at-least-once. A message's offset is stored (librdkafka's
// `enable.auto.offset.store` is forced off) only after its handler — and the handler of every
// earlier message of the same partition — finished; stored offsets are committed by
// librdkafka's auto-commit, and on every revocation and on close. A handler that was
// cancelled, or a process that died, leaves the offset behind: the message is handled again
// after a restart or a rebalance, so handlers should be idempotent.
//
// Ordering and parallelism: messages of one partition are handled one after the other, in
// offset order (or pipelined: see max_in_flight_per_partition); different partitions run in
// parallel, at most `max_partitions_in_flight` at once: partitions beyond that wait in line,
// and a busy partition gives its slot to the waiting ones after 64 messages and goes to the
// back of the line, so partitions take turns.
// An offset going back within an assignment (a seek, an offset reset, a truncated log) is
// followed: the messages from there are handled (again) and the stored offset moves back.
//
// Failures: a handler that throws is retried with backoff up to `max_attempts` attempts;
// then the message is published to the dead-letter topic with the reason in headers (see
// dead_letter_header) and the partition moves on. A handler that throws
// kafka::permanent_error (typed_handlers does for unknown types and undecodable payloads)
// goes to the dead-letter topic at once. A dead-letter send is not abandoned when its worker
// is cancelled (stop, revocation): its delivery report is awaited (bounded by close_timeout
// / revoke_timeout) and a delivered message's offset is stored. Without a dead-letter topic
// a failing message is retried until it succeeds: a partition is never skipped silently.
//
// Rebalancing (cooperative-sticky by default): for revoked partitions dispatch stops at
// once, their in-flight handlers get `revoke_timeout` to finish (then they are cancelled),
// their offsets are stored, and only then are they unassigned, so the next owner starts
// right after the last finished message. A lost assignment (session timeout) is not
// committed: its handlers are cancelled and their offsets left to the new owner.
//
// The loop is never blocked: librdkafka's threads only signal an eventfd; the loop serves
// the consumer queue (rd_kafka_consumer_poll with a zero timeout) until it is empty, plus
// every `poll_interval` as a safety net. Each assigned partition keeps its own librdkafka
// queue (not forwarded to the consumer queue, which then carries only rebalances and
// errors); messages are taken from it only while the partition's local buffer has room, so
// a slow partition holds back only its own fetching, bounded by librdkafka's prefetch limits
// (`queued.min.messages`, `queued.max.messages.kbytes`), without pause/resume (which in
// librdkafka 2.0.2 stalls a partition for up to a second). The librdkafka calls made on the
// loop that synchronise with librdkafka's threads (assign, unassign, subscribe) hand a
// request to librdkafka's main thread and return without network I/O.
//
// Threading: one consumer is used from one thread (its executor's); not thread-safe.

#include <corvo/core/backoff.hpp>
#include <corvo/kafka/config.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/message.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct rd_kafka_s;

namespace corvo::kafka {

namespace asio = boost::asio;

struct topic_partition {
  std::string topic;
  std::int32_t partition = -1;

  friend auto operator<=>(const topic_partition&, const topic_partition&) = default;
};

/// Headers the consumer adds to a dead-lettered message (besides the original headers; key
/// and value are unchanged).
namespace dead_letter_header {
/// Why: the last handler failure's what(), or the permanent_error's reason.
inline constexpr std::string_view reason = "corvo.dlq.reason";
/// "handler_failed" after exhausted retries, else permanent_error::kind() (typed handlers:
/// "unknown_type", "decode_error").
inline constexpr std::string_view kind = "corvo.dlq.kind";
inline constexpr std::string_view topic = "corvo.dlq.topic";
inline constexpr std::string_view partition = "corvo.dlq.partition";
inline constexpr std::string_view offset = "corvo.dlq.offset";
inline constexpr std::string_view attempts = "corvo.dlq.attempts";
inline constexpr std::string_view group = "corvo.dlq.group";
}  // namespace dead_letter_header

struct consumer_options {
  /// Topics to subscribe to (a name starting with '^' is a regular expression).
  std::vector<std::string> topics;
  /// Partitions whose handlers run at once.
  std::size_t max_partitions_in_flight = 16;
  /// Handlers of one partition that run at once (0 is taken as 1). With 1 (the default) a
  /// partition's messages are handled strictly one after the other. With N > 1 they are
  /// pipelined: handlers are started in offset order, each running until its first
  /// suspension before the next one starts, up to N at once, and may finish in any order;
  /// the stored offset still never passes an unfinished message (at-least-once holds, see
  /// detail/offset_tracker.hpp). Made for handlers that take their order-dependent decision
  /// before they first suspend and then wait for something slow that batches (a group
  /// commit to a database), so N messages share one wait instead of paying one each.
  /// Retries then keep no order: a failed message is retried while later ones go on. A
  /// revocation or stop that cancels the partition's worker (lost assignment, timeout, a
  /// message waiting to be retried) cancels all of its running handlers.
  std::size_t max_in_flight_per_partition = 1;
  /// Handler attempts per message before it is dead-lettered (>= 1); 0 retries forever.
  unsigned max_attempts = 5;
  /// Delays between attempts.
  backoff_policy retry_backoff{std::chrono::milliseconds{100}, std::chrono::milliseconds{5000}};
  /// Where failed messages go; "{topic}" is replaced by the message's topic. Empty: no
  /// dead-letter topic (failing messages are retried forever).
  std::string dead_letter_topic = "{topic}.dlq";
  /// Messages taken from a partition's librdkafka queue ahead of its handler (the rest
  /// waits in librdkafka's prefetch queue).
  std::size_t max_buffered_per_partition = 256;
  /// How long handlers of revoked partitions may run on before they are cancelled.
  std::chrono::milliseconds revoke_timeout{10'000};
  /// How long in-flight handlers may run on after stop() before they are cancelled.
  std::chrono::milliseconds shutdown_timeout{10'000};
  /// How long leaving the group (commit, unassign) may take at the end of run().
  std::chrono::milliseconds close_timeout{10'000};
  /// Safety-net poll of librdkafka's queue, in case a wake-up is missed.
  std::chrono::milliseconds poll_interval{100};
  /// Called (on the consumer's executor) after partitions were assigned.
  std::function<void(const std::vector<topic_partition>&)> on_assigned;
  /// Called (on the consumer's executor) after partitions were given up; `lost` when the
  /// assignment was lost rather than revoked.
  std::function<void(const std::vector<topic_partition>&, bool lost)> on_revoked;
  /// Called on the consumer's executor with librdkafka's statistics JSON (its STATISTICS.md:
  /// per partition `consumer_lag`, fetch state, ...) every `statistics.interval.ms`, a
  /// librdkafka property that is 0 (off) unless configured; e.g. ops::record_kafka_statistics
  /// for the lag per partition. An exception it throws is logged and ignored.
  std::function<void(std::string_view json)> on_statistics;
};

/// Counters since construction.
struct consumer_stats {
  std::uint64_t received = 0;         ///< messages fetched and queued for a handler
  std::uint64_t handled = 0;          ///< handler calls that succeeded
  std::uint64_t failed_attempts = 0;  ///< handler calls that failed
  std::uint64_t dead_lettered = 0;    ///< messages published to the dead-letter topic
  std::uint64_t dropped = 0;          ///< fetched messages not handled (revoked, stopping)
  std::uint64_t assigned = 0;         ///< partitions assigned
  std::uint64_t revoked = 0;          ///< partitions revoked (lost ones included)
  std::uint64_t lost = 0;             ///< partitions lost
  std::size_t in_flight = 0;          ///< partitions whose handler runs now
  std::size_t buffered = 0;           ///< messages fetched and waiting for their handler
};

class consumer {
 public:
  using executor_type = asio::any_io_executor;
  /// Handles one message; throws to report a failure. The message (and the views it hands
  /// out) is valid until the returned awaitable completes. Called on the consumer's
  /// executor; it may be cancelled (terminal) on revocation and shutdown.
  using handler_type = std::function<asio::awaitable<void>(const message&)>;

  /// Creates the librdkafka consumer. `group.id` must be set (kafka.consumer.group.id or
  /// kafka.group.id). Defaults: `partition.assignment.strategy=cooperative-sticky`,
  /// `auto.offset.reset=earliest`, `enable.auto.commit=true`; `enable.auto.offset.store` is
  /// always false. With a dead-letter topic, a producer for it is created from the same
  /// configuration. Throws config_error naming a rejected or missing property.
  consumer(executor_type executor, const client_config& config, consumer_options options);

  /// If run() is still active, asks it to stop (it finishes the orderly close on its own).
  /// Otherwise destroys the librdkafka handle; a consumer that ran and was not closed leaves
  /// the group by session timeout.
  ~consumer();

  consumer(consumer&&) noexcept;
  consumer& operator=(consumer&&) = delete;
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  /// Subscribes and dispatches messages to `handler` until stop() is called or run() is
  /// cancelled (terminal); then stops fetching, lets in-flight handlers finish (up to
  /// `shutdown_timeout`, then cancels them), commits the stored offsets and leaves the group
  /// (up to `close_timeout`), all without blocking the loop. Returns normally after stop();
  /// throws system_error(operation_aborted) after cancellation, and system_error with the
  /// Kafka error after a fatal consumer error. Call once.
  asio::awaitable<void> run(handler_type handler);

  /// Asks run() to stop as described there. Callable before run() (run() then returns at
  /// once).
  void stop();

  /// The partitions assigned now (revoked ones no longer appear).
  std::vector<topic_partition> assignment() const;

  consumer_stats stats() const;
  const std::string& group_id() const noexcept;
  executor_type get_executor() const noexcept;
  /// librdkafka's handle (for calls corvo does not wrap, e.g. rd_kafka_committed).
  rd_kafka_s* native_handle() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::kafka
