#pragma once
// The scheduler API: a store chosen by configuration, handlers by task type, and a
// dispatcher, behind one object.
//
//   corvo::schedule::scheduler s(ex, scheduler_options::from(cfg), &redis_conn, redis_cfg);
//   s.handlers().on<email_timeout>("email.timeout", send_timeout_notice);
//   co_await group.spawn(s.run());   // a child of the root: a stop request drains it
//   email_timeout payload{"order-42"};                       // a named payload (GCC 12)
//   co_await s.schedule("order-42", "email.timeout", payload, schedule::now() + 30min);
//
// Providers (`scheduler.provider`):
//   memory       in-process store, same semantics minus durability (the embedded default);
//   redis        durable Redis store (standalone or cluster), handlers run in this process;
//   redis-kafka  durable Redis store; tasks are published to Kafka when due and a consumer
//                group runs the handlers (kafka_sink.hpp, kafka_worker.hpp).
// The sink can also be chosen on its own (`scheduler.sink`: direct | kafka; the default
// follows the provider), e.g. memory + kafka.
//
// Configuration keys (all optional): scheduler.provider, scheduler.sink, scheduler.namespace,
// scheduler.shards, scheduler.max_in_flight, scheduler.claim_batch, scheduler.lease,
// scheduler.max_sleep, scheduler.drain_timeout, scheduler.retry_initial, scheduler.retry_max,
// scheduler.priority_aging (redis_store_options::priority_aging, both stores),
// scheduler.types (per task type: max_attempts, retry_initial, retry_max, retry_multiplier,
// retry_jitter, run_timeout; dispatcher.hpp type_policy; unknown keys refused),
// scheduler.redis.wait_replicas and scheduler.redis.wait_timeout (redis_store_options),
// scheduler.events.enabled and scheduler.events.max_len (events.hpp; both stores);
// with the Kafka sink: scheduler.kafka.topic (default "corvo.tasks"),
// scheduler.kafka.consume (default true: this process also runs the consumer group),
// scheduler.kafka.health_interval, scheduler.kafka.max_attempts (handler attempts before
// the dead-letter topic), scheduler.kafka.dead_letter_topic (default "{topic}.dlq"), and
// the `kafka` section for librdkafka (kafka/config.hpp; `bootstrap.servers` is required,
// the consumer's group.id defaults to "corvo.<namespace>"). Any other key below `scheduler`
// is a config_error naming the nearest known key; the redis provider needs `redis.url` or
// `redis.cluster.seeds`; a `redis` section with no `scheduler.provider` is an error (say
// "memory" to mean the in-process store).

#include <boost/json/value_from.hpp>
#include <corvo/core/config.hpp>
#include <corvo/kafka/config.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/kafka_sink.hpp>
#include <corvo/schedule/kafka_worker.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace corvo::schedule {

enum class provider { memory, redis };
enum class sink_kind { direct, kafka };

struct scheduler_options {
  schedule::provider provider = provider::memory;
  sink_kind sink = sink_kind::direct;
  redis_store_options redis{};
  unsigned memory_shards = 4;
  dispatcher_options dispatch{};
  /// Task events, for either store (`scheduler.events.enabled`, `.max_len`); redis.events is
  /// set from it.
  events_options events{};
  /// The Kafka sink's settings and librdkafka properties (used with sink_kind::kafka).
  kafka_sink_options kafka_sink{};
  kafka::client_config kafka{};
  /// Run the consumer group (kafka_worker) in this process too.
  bool kafka_consume = true;
  kafka_worker_options kafka_worker{};

  /// Reads the `scheduler` and `kafka` sections (see the file comment). Throws config_error
  /// naming the key for a bad value, e.g. an unknown provider or a Kafka sink without
  /// `kafka.bootstrap.servers`.
  static scheduler_options from(const corvo::config& cfg);
};

class scheduler {
 public:
  /// `commands` (run by the caller) and `subscriber` are required by the redis provider and
  /// refused by the memory provider (a forgotten `scheduler.provider`): either mismatch
  /// throws std::invalid_argument. With the Kafka sink the producer (and the consumer, if
  /// kafka_consume) are created here; their errors are kafka::producer's and
  /// kafka::consumer's.
  scheduler(asio::any_io_executor executor, scheduler_options options,
            redis::client* commands = nullptr, std::optional<redis::client_config> subscriber = {});
  ~scheduler();

  handler_registry& handlers() noexcept;
  store& tasks() noexcept;
  /// The dispatcher (on_start observers, wake-ups).
  schedule::dispatcher& dispatcher() noexcept;
  /// The Kafka sink (of the current or last run), or null with the direct sink.
  schedule::kafka_sink* kafka_sink() noexcept;
  /// The consumer-group worker (of the current or last run), or null (direct sink, or
  /// kafka_consume off).
  schedule::kafka_worker* kafka_worker() noexcept;
  const dispatcher_stats& dispatch_stats() const noexcept;
  /// Tasks scheduled through this object since it was created, by type: schedule() and
  /// schedule_many() (the tasks stored: not those a schedule_many_error names, none after a
  /// cancellation or another failure of the call), schedule_if_absent() when it added the
  /// task, schedule_deduplicated() and schedule_deduplicated_by_key() unless dropped.
  /// Schedules by other processes, the store
  /// directly, the CLI and recurrences are not counted. (ops::watch_scheduler's
  /// corvo_schedule_scheduled_total.)
  const std::map<std::string, std::uint64_t, std::less<>>& scheduled_by_type() const noexcept;
  const scheduler_options& options() const noexcept;
  /// True while run() is active.
  bool running() const noexcept;

  /// Dispatches due tasks (and, with the Kafka sink and kafka_consume, runs the consumer
  /// group) until cancelled: then stops claiming, drains the runs in flight, hands back what
  /// did not finish, closes the producer and leaves the group (see dispatcher::run,
  /// kafka::consumer::run). Throws operation_aborted after cancellation, or the first
  /// failure of either part. May be called again after it returned (a supervisor restarting
  /// the scheduler): the Kafka producer and consumer are created anew for each run. Throws
  /// std::logic_error while a run is active.
  asio::awaitable<void> run();

  /// Adds or replaces a task, and wakes this process's dispatcher for it. Every schedule
  /// call of the scheduler gives a task with max_attempts 0 its type's max_attempts
  /// (`scheduler.types`), else default_max_attempts.
  asio::awaitable<void> schedule(task t);

  /// Adds the task only when no task with its id exists (store::schedule_if_absent): true
  /// when added (and this process's dispatcher woken for it), false when the existing one
  /// was kept.
  asio::awaitable<bool> schedule_if_absent(task t);

  /// Schedules with a deduplication window on the task id (store::schedule_deduplicated:
  /// debounce by replacing the waiting task, or drop), and wakes this process's dispatcher
  /// unless the schedule was dropped. Returns what happened.
  asio::awaitable<dedup_outcome> schedule_deduplicated(task t, dedup_options options);

  /// Schedules with a deduplication window on `key`, apart from the task id
  /// (store::schedule_deduplicated_by_key: schedules of different ids with one key within the
  /// window replace the pending task, or are dropped), and wakes this process's dispatcher
  /// unless the schedule was dropped. Returns what happened (and which id was replaced).
  asio::awaitable<dedup_result> schedule_deduplicated_by_key(task t, std::string key,
                                                             dedup_options options);

  /// Adds or replaces many tasks (store::schedule_many: a window of calls in flight, partial
  /// failures reported by schedule_many_error), and wakes this process's dispatcher for the
  /// shards they landed on.
  asio::awaitable<void> schedule_many(std::vector<task> tasks, std::size_t window = 512);

  /// Adds or replaces task `id` of `type` with `payload` due at `due`, building the task
  /// inside this coroutine. The natural call, written inline in a co_await, needs no
  /// aggregate temporary: GCC 12 destroys a brace-initialised aggregate temporary with a
  /// destructor (`task{...}`, `my_payload{...}`) inside a `co_await` expression twice, so
  /// pass a named payload (or a type with a constructor), never `my_payload{...}`
  /// (docs/scheduler.md, "Calling it safely with GCC 12").
  asio::awaitable<void> schedule(std::string id, std::string type, boost::json::value payload,
                                 time_point due, std::uint32_t max_attempts = 0);

  /// The same with any payload boost::json::value_from converts (tag_invoke).
  template <class Payload>
  requires(!std::is_convertible_v<const Payload&, boost::json::value>)
      asio::awaitable<void> schedule(std::string id, std::string type, const Payload& payload,
                                     time_point due, std::uint32_t max_attempts = 0) {
    return schedule(std::move(id), std::move(type), boost::json::value_from(payload), due,
                    max_attempts);
  }
  asio::awaitable<std::optional<task>> get(std::string id);
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit);
  asio::awaitable<bool> cancel(std::string id);
  asio::awaitable<bool> reschedule(std::string id, time_point due);
  asio::awaitable<store_stats> stats();
  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit);
  /// Pauses the namespace (`type` empty) or one task type in every process sharing it
  /// (store::pause): paused tasks stay scheduled and due, and run once resumed.
  asio::awaitable<void> pause(std::string type = {});
  /// Lifts a pause (store::resume); the dispatchers of every process are woken, this one's
  /// directly.
  asio::awaitable<void> resume(std::string type = {});
  asio::awaitable<pause_state> paused();
  asio::awaitable<bool> replay(std::string id);
  asio::awaitable<std::size_t> purge(std::string id);
  /// A reader of the namespace's task events (store::events; events.hpp). Works whether or
  /// not this scheduler writes them (`scheduler.events.enabled`). Pass a named query (no
  /// default argument: an aggregate temporary inside co_await is destroyed twice by GCC 12).
  asio::awaitable<std::unique_ptr<event_reader>> events(event_query query);

 private:
  struct sink_slot;  // the dispatcher's sink: forwards to the current run's sink

  void apply_policy(task& t) const;
  // The counter of `type` in scheduled_by_type(), created at 0.
  std::uint64_t& scheduled_counter(const std::string& type);
  asio::awaitable<void> run_once();
  asio::awaitable<void> dispatch();
  asio::awaitable<void> consume();

  asio::any_io_executor executor_;
  scheduler_options options_;
  std::unique_ptr<store> store_;
  handler_registry handlers_;
  std::unique_ptr<sink_slot> out_;
  std::unique_ptr<schedule::kafka_worker> worker_;
  schedule::dispatcher dispatcher_;
  bool running_ = false;
  bool ran_ = false;
  std::map<std::string, std::uint64_t, std::less<>> scheduled_;
};

}  // namespace corvo::schedule
