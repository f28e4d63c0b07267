#pragma once
// The consuming side of the Kafka sink: a consumer group member that runs the scheduler's
// handlers (handler_registry) for the tasks the kafka_sink publishes.
//
//   schedule::kafka_worker worker(ex, kafka::client_config::from(cfg), handlers,
//                                 {.topic = "tasks"});
//   co_await worker.run();   // until stop() or cancellation
//
// Delivery, ordering, retries and dead letters are those of kafka::consumer (consumer.hpp):
// at-least-once, one partition's tasks in order, a failing handler retried with backoff up
// to `consumer.max_attempts` (the consumer's setting: a task's own max_attempts governs the
// dispatcher's tries before Kafka, not these), then published to the dead-letter topic
// with the reason in headers. A message that is not a task message, a task type without a handler, and a
// handler's permanent_error (e.g. a payload that does not decode to the handler's type) go
// to the dead-letter topic at once (kinds "decode_error", "unknown_type",
// "permanent_error").

#include <corvo/kafka/config.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/schedule/task_message.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace corvo::schedule {

struct kafka_worker_options {
  /// The topic the kafka_sink publishes to.
  std::string topic = "corvo.tasks";
  /// Consumer settings; `topics` is replaced by {topic}.
  kafka::consumer_options consumer{};
  /// A handler run longer than the task's own timeout (`task::timeout`, carried in the
  /// message), else than this, is cancelled and counts as a failed attempt (retried by the
  /// consumer, then dead-lettered). 0: no limit. The scheduler sets it from
  /// `scheduler.run_timeout`.
  std::chrono::milliseconds run_timeout{0};
};

class kafka_worker {
 public:
  /// Called on the worker's executor right before a task's handler starts (measuring
  /// lateness, tracing).
  using start_observer = std::function<void(const task_message&)>;

  /// Creates the consumer (`group.id` must be configured; errors as kafka::consumer's
  /// constructor). `handlers` must outlive the worker.
  kafka_worker(asio::any_io_executor executor, const kafka::client_config& config,
               const handler_registry& handlers, kafka_worker_options options = {});
  ~kafka_worker();
  kafka_worker(const kafka_worker&) = delete;
  kafka_worker& operator=(const kafka_worker&) = delete;

  /// Consumes and runs handlers until stop() or cancellation (see kafka::consumer::run).
  asio::awaitable<void> run();
  void stop();

  void on_start(start_observer observer);

  kafka::consumer& consumer() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
