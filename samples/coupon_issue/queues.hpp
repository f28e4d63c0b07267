#pragma once
// The two halves around the queue, for both queue modes:
//
//   API:        request_sender   (batcher) ─▶ Redis reliable queue (LPUSH of a batch)
//                                          └▶ Kafka topic, key = coupon id
//   processor:  reliable_queue / kafka::consumer ─▶ processor::handle ─▶ issuer (in memory,
//               in arrival order) ─▶ writer (batcher) ─▶ one transaction per batch ─▶ ack
//
// Sending: every request the API accepts goes through one batcher, so requests leave in
// the order they were numbered (`seq`): one LPUSH per batch (Redis: the queue is consumed
// from the other end, oldest first) or one burst of Kafka sends (one partition per coupon
// keeps their order). The HTTP answer waits until the batch is in Redis / acknowledged by
// Kafka: an accepted request is never lost.
//
// Processing: handle() decides the request at once, before anything is awaited: the
// reliable queue starts its handlers in the order it took the items, the Kafka consumer
// starts a partition's handlers in offset order (pipelined: each runs up to its first
// suspension before the next starts, see kafka::consumer_options::
// max_in_flight_per_partition), so decisions follow arrival order per coupon. Then handle()
// waits until its decision is committed (many requests of a partition share one commit);
// only then is the item acknowledged (Redis) or its offset stored (Kafka). A processor killed at
// any point loses nothing and issues nothing twice: undecided requests are delivered again; decided
// ones are delivered again too when the kill came between the commit and the acknowledgement, and
// the issuer recognises them by request id (state reloaded from the database at start).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/kafka/config.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/redis/client.hpp>
#include <map>
#include <memory>
#include <sample/batcher.hpp>
#include <string>
#include <vector>

#include "coupon_store.hpp"
#include "issuer.hpp"

namespace coupon_issue {

enum class queue_mode { redis, kafka };
std::string_view to_string(queue_mode m) noexcept;
/// "redis" or "kafka"; throws std::invalid_argument.
queue_mode queue_mode_from(std::string_view text);

/// The API's side: numbers requests and sends them in that order.
class request_sender {
 public:
  /// Redis mode: pushes to queue `name` through `redis`.
  request_sender(asio::any_io_executor executor, corvo::redis::client& redis, std::string name,
                 std::size_t max_batch);
  /// Kafka mode: sends to `topic` (key = coupon id) through a producer made from `config`.
  request_sender(asio::any_io_executor executor, const corvo::kafka::client_config& config,
                 std::string topic, std::size_t max_batch);
  ~request_sender();

  /// Numbers `r` (r.seq, r.id from this sender's prefix) and enqueues it; completes once it
  /// is in the queue. Throws when it could not be (Redis or Kafka unreachable).
  asio::awaitable<void> send(issue_request& r);

  /// The sending loop; run it while the API serves. When cancelled, a Kafka producer is
  /// closed (flushed, then its polling stops), so nothing of it outlives the loop.
  asio::awaitable<void> run();

  std::uint64_t accepted() const noexcept { return accepted_; }
  std::uint64_t failed() const noexcept { return failed_; }
  std::uint64_t batches() const noexcept { return batches_.batches(); }

 private:
  asio::awaitable<void> flush(std::vector<std::string>& bodies, std::vector<std::string>& keys);
  asio::awaitable<void> flush_batch(std::vector<issue_request>& batch);

  asio::any_io_executor executor_;
  queue_mode mode_;
  std::unique_ptr<corvo::queue::producer> redis_;
  std::unique_ptr<corvo::kafka::producer> kafka_;
  std::string topic_;
  std::string prefix_;
  std::int64_t seq_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t failed_ = 0;
  corvo::samples::batcher<issue_request> batches_;
};

struct processor_stats {
  std::uint64_t decided = 0;        ///< requests decided (new request ids)
  std::uint64_t recognised = 0;     ///< delivered again and recognised (no second decision)
  std::uint64_t dead_lettered = 0;  ///< messages without a request id
  std::uint64_t batches = 0;        ///< transactions committed
  std::uint64_t write_retries = 0;  ///< failed commits (retried)
  std::map<outcome, std::uint64_t> outcomes;
  std::chrono::steady_clock::time_point first_decision{};  ///< of this process
  std::chrono::steady_clock::time_point last_commit{};
};

/// The processor: decides requests and commits the decisions in batches.
class processor {
 public:
  /// `crash_after_batches` > 0: the process kills itself (SIGKILL) right after committing
  /// that many batches, before acknowledging them (the crash test's fault injection).
  processor(asio::any_io_executor executor, coupon_store& store, std::size_t max_batch,
            std::uint64_t crash_after_batches = 0);

  /// Loads the issuer's state from the database. Call before handling anything.
  asio::awaitable<void> load();
  /// The writer loop; run it while the processor runs. A failed commit is retried (with
  /// backoff) until it succeeds: the order of the batches is kept.
  asio::awaitable<void> run_writer() { return writer_.run(); }

  /// Handles one queued message (see the file comment). Throws std::invalid_argument for
  /// a message without a request id (the caller dead-letters it).
  asio::awaitable<void> handle(std::string_view message);

  const processor_stats& stats() const noexcept { return stats_; }
  const issuer& state() const noexcept { return issuer_; }

 private:
  asio::awaitable<void> commit(std::vector<decision>& batch);

  asio::any_io_executor executor_;
  coupon_store& store_;
  std::uint64_t crash_after_;
  issuer issuer_;
  processor_stats stats_;
  corvo::samples::batcher<decision> writer_;
};

/// The reliable-queue handler of `p` (permanent_error for a message without a request id).
asio::awaitable<void> handle_queue_item(processor* p, std::string body);
/// The Kafka handler of `p` (kafka::permanent_error likewise).
asio::awaitable<void> handle_kafka_message(processor* p, std::string_view value);

}  // namespace coupon_issue
