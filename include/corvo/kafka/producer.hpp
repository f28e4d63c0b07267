#pragma once
// A Kafka producer whose sends are asynchronous operations on an io_context.
//
//   corvo::kafka::producer producer(executor, corvo::kafka::client_config::from(cfg));
//   auto report = co_await producer.send("orders", order_id, payload);   // partition, offset
//   ...
//   co_await producer.close();   // flushes without blocking the loop
//
// A send completes when librdkafka's delivery report for that message arrives: with the
// partition and offset the broker assigned, or with the error (category "corvo.kafka",
// librdkafka's code and text). The producer is idempotent with `acks=all` unless the
// configuration says otherwise, so a delivered message was written once, in order per
// partition, and replicated to the in-sync replicas.
//
// The loop is never blocked. librdkafka's background threads only write to an eventfd when
// delivery reports are waiting; the loop then serves them (rd_kafka_poll with a zero timeout)
// until none is left, and a timer serves them every `poll_interval` as a safety net. When
// librdkafka's local queue is full (`queue.buffering.max.messages` / `.kbytes`), a send
// waits — in the order sends were made — until delivery reports free space; nothing blocks.
//
// Cancellation (terminal, partial, total) of a send:
//  - still waiting for queue space: the message is dropped and the send completes with
//    operation_aborted; it was never handed to librdkafka;
//  - already handed to librdkafka: the send completes with operation_aborted at once, but
//    the message stays queued and MAY STILL BE DELIVERED (its report is discarded). Kafka
//    offers no way to take a produced message back.
//
// Threading: one producer is used from one thread (its executor's); not thread-safe.

#include <corvo/kafka/config.hpp>
#include <corvo/kafka/detail/handler_memory.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/message.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

struct rd_kafka_s;

namespace corvo::kafka {

namespace asio = boost::asio;

/// Let librdkafka's partitioner choose (by key hash; sticky batches for null keys).
inline constexpr std::int32_t any_partition = -1;

/// Where a delivered message was written.
struct delivery_report {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

/// A message to send. The views need to stay valid only until the send has started (the
/// initiating call, or the co_await of send()); librdkafka copies them.
struct outgoing_message {
  std::string_view topic;
  /// nullopt sends a null key.
  std::optional<std::string_view> key;
  std::string_view value;
  std::vector<header> headers;
  std::int32_t partition = any_partition;
};

struct producer_options {
  /// Safety-net poll of librdkafka's queue, in case a wake-up is missed.
  std::chrono::milliseconds poll_interval{100};
  /// Called on the producer's executor with librdkafka's statistics JSON (see librdkafka's
  /// STATISTICS.md: broker states, partition leaders, queue depths) every
  /// `statistics.interval.ms`, a librdkafka property that is 0 (off) unless configured.
  std::function<void(std::string_view json)> on_statistics;
};

/// Counters since construction.
struct producer_stats {
  std::uint64_t sent = 0;        ///< sends started
  std::uint64_t delivered = 0;   ///< delivery reports with success
  std::uint64_t failed = 0;      ///< sends completed with an error (cancellations included)
  std::uint64_t queue_full = 0;  ///< sends that had to wait for local queue space
  std::size_t in_flight = 0;     ///< sends not completed yet
  std::size_t waiting = 0;       ///< of which waiting for local queue space
};

class producer {
 public:
  using executor_type = asio::any_io_executor;
  using send_signature = void(boost::system::error_code, delivery_report);
  using send_handler = asio::any_completion_handler<send_signature>;

  /// Creates the librdkafka producer. Defaults: `enable.idempotence=true`, `acks=all`
  /// (the configuration may override them). Throws config_error naming a property
  /// librdkafka rejects.
  producer(executor_type executor, const client_config& config, producer_options options = {});

  /// Destroys the librdkafka handle after purging what is still queued: sends not yet
  /// completed complete with kafka::error::destroy (the messages may or may not have been
  /// delivered). This joins librdkafka's threads, which takes a moment: co_await close()
  /// first for an orderly end.
  ~producer();

  producer(producer&&) noexcept;
  producer& operator=(producer&&) noexcept;
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// Sends `message`; completes with the delivery report (see the header comment for
  /// errors and cancellation). Signature: void(error_code, delivery_report).
  template <class CompletionToken>
  auto async_send(outgoing_message message, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, send_signature>(initiate_send{impl_.get()}, token,
                                                                 std::move(message));
  }

  /// Awaitable send; throws system_error with the delivery error.
  asio::awaitable<delivery_report> send(std::string_view topic, std::optional<std::string_view> key,
                                        std::string_view value, std::vector<header> headers = {}) {
    return async_send(outgoing_message{topic, key, value, std::move(headers)}, asio::use_awaitable);
  }
  asio::awaitable<delivery_report> send(outgoing_message message) {
    return async_send(std::move(message), asio::use_awaitable);
  }

  /// Waits until fewer than `max_in_flight` sends are open (at once if that is already so):
  /// the back-pressure of a sender that completes its sends with callbacks instead of
  /// awaiting each one,
  ///
  ///   for (auto& event : events) {
  ///     if (producer.in_flight() >= 50'000) co_await producer.wait_below(50'000);
  ///     producer.async_send({.topic = "events", .value = event}, on_report);
  ///   }
  ///
  /// Also returns when the producer stops. Cancellation (terminal): throws
  /// system_error(operation_aborted).
  asio::awaitable<void> wait_below(std::size_t max_in_flight);

  /// Sends started and not completed yet.
  std::size_t in_flight() const noexcept;

  /// Waits until every send made so far has completed, or `timeout` passed (returns false).
  /// Polls with a timer; never blocks the loop. Cancellation (terminal): throws
  /// system_error(operation_aborted), sends unaffected.
  asio::awaitable<bool> flush(std::chrono::steady_clock::duration timeout);

  /// Stops accepting sends (later sends fail with corvo::error::stopping), flushes for up
  /// to `timeout`, then purges what is left (those sends fail with purge_queue or
  /// purge_inflight) and stops polling. Cancellation (terminal) skips to the purge.
  asio::awaitable<void> close(std::chrono::steady_clock::duration timeout = std::chrono::seconds{
                                  10});

  producer_stats stats() const noexcept;
  /// The fatal error librdkafka reported (e.g. an idempotence sequence failure), after which
  /// every send fails with it; empty while the producer is healthy. A new producer is needed.
  boost::system::error_code fatal_error() const noexcept;
  /// True from close() (or destruction) on: sends fail with corvo::error::stopping.
  bool closed() const noexcept;
  executor_type get_executor() const noexcept;
  /// librdkafka's handle (for rd_kafka_* calls corvo does not wrap); null after destruction.
  rd_kafka_s* native_handle() const noexcept;

  struct impl;

 private:
  static void start_send(impl* self, outgoing_message&& message, send_handler handler,
                         bool complete_inline);
  static const executor_type& executor_of(const impl* self) noexcept;

  struct initiate_send {
    impl* self;
    template <class Handler>
    void operator()(Handler&& handler, outgoing_message message) const {
      // Decided once, while the handler's type is known: a handler that runs on this
      // producer's executor (an awaiting coroutine, typically) is completed directly from
      // the delivery-report handler instead of through a type-erased dispatch.
      using handler_type = std::decay_t<Handler>;
      bool complete_inline = true;  // a handler without an executor of its own
      if constexpr (!std::is_same_v<
                        asio::associated_executor_t<handler_type, asio::system_executor>,
                        asio::system_executor>) {
        const auto& own = executor_of(self);
        complete_inline = asio::get_associated_executor(handler, own) == own;
      }
      if constexpr (std::is_same_v<asio::associated_allocator_t<handler_type>,
                                   std::allocator<void>>) {
        // No allocator of its own: type-erase it with pooled memory (see handler_memory).
        start_send(self, std::move(message),
                   send_handler(asio::bind_allocator(detail::handler_allocator<void>(),
                                                     std::forward<Handler>(handler))),
                   complete_inline);
      } else {
        start_send(self, std::move(message), send_handler(std::forward<Handler>(handler)),
                   complete_inline);
      }
    }
  };

  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::kafka
