#pragma once
// The Kafka sink: the dispatcher publishes each claimed task to a topic (task_message.hpp)
// and acknowledges it in the store when the broker confirmed the write (the delivery
// report); a consumer group runs the handlers (kafka_worker.hpp).
//
//   schedule::kafka_sink out(ex, kafka::client_config::from(cfg), {.topic = "tasks"});
//   schedule::dispatcher d(store, out);
//
// Guarantee: at-least-once from the store to the handler. A task leaves the store only after
// Kafka has it. A send cut short by the dispatcher stopping hands the task back (due at
// once); a killed process leaves it leased, so it is published again when the lease
// expires. Either way Kafka may already have the first copy, and the consumer may see it
// twice (handlers should be idempotent, as for any Kafka consumer).
//
// Errors: delivery errors no retry can fix (message too large, topic authorization
// failed, invalid record) are permanent_error (dead-lettered at once); others are retried
// by the dispatcher with backoff, each try counting as an attempt.
//
// Availability: the sink reads librdkafka's statistics every `health_interval` and reports
// itself unavailable while a partition leader of the topic is unreachable; the dispatcher
// then stops claiming, and tasks wait in the store (due, or leased while their sends wait in
// librdkafka) until the brokers are back. The sink is also unavailable once its producer is
// closed or failed fatally. Defaults the sink gives its producer unless the configuration
// sets them: `linger.ms=0` (the scheduler's point is precision; librdkafka still batches
// what accumulates while a request is in flight), `message.timeout.ms=0` (a send waits for
// the brokers as long as it takes, its task leased, instead of failing and using up an
// attempt), `enable.sparse.connections=false` and `reconnect.backoff.max.ms=1000` (so a
// broker that comes back is noticed within about a second even while nothing is sent to
// it), `statistics.interval.ms` = health_interval (a configured value wins, and then sets
// how quickly an outage is noticed).

#include <corvo/kafka/config.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/schedule/sink.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace corvo::schedule {

struct kafka_sink_options {
  /// The topic tasks are published to.
  std::string topic = "corvo.tasks";
  /// How often broker health is read (librdkafka's `statistics.interval.ms`).
  std::chrono::milliseconds health_interval{500};
};

class kafka_sink final : public sink {
 public:
  /// Creates the producer (errors as kafka::producer's constructor).
  kafka_sink(asio::any_io_executor executor, const kafka::client_config& config,
             kafka_sink_options options = {});
  ~kafka_sink() override;
  kafka_sink(const kafka_sink&) = delete;
  kafka_sink& operator=(const kafka_sink&) = delete;

  /// Publishes the task; completes on its delivery report. Throws system_error with the
  /// delivery error (the dispatcher retries it with backoff).
  asio::awaitable<void> deliver(const claimed_task& t) override;

  /// False while a partition leader of the topic is unreachable, and once the producer is
  /// closed or failed fatally (see the file comment).
  bool available() const noexcept override;

  /// Flushes what is still queued (up to `timeout`) and stops the producer.
  asio::awaitable<void> close(std::chrono::steady_clock::duration timeout = std::chrono::seconds{
                                  10});

  kafka::producer& producer() noexcept;
  const kafka_sink_options& options() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
