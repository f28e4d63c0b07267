#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace corvo::schedule {
namespace {

namespace json = boost::json;

std::unique_ptr<store> make_store(const asio::any_io_executor& executor,
                                  const scheduler_options& options, redis::client* commands,
                                  std::optional<redis::client_config> subscriber) {
  if (options.provider == provider::memory) {
    if (commands != nullptr || subscriber) {
      // Almost always a forgotten `scheduler.provider`: the tasks would silently live (and
      // die) in this process while the caller believes they are in Redis.
      throw std::invalid_argument(
          "scheduler: the provider is memory (the default) but a Redis connection was given; "
          "set scheduler.provider to \"redis\" (or pass no connection for an in-process "
          "store)");
    }
    auto memory = std::make_unique<memory_store>(executor, options.memory_shards);
    memory->set_priority_aging(options.redis.priority_aging);  // the same rule as Redis
    memory->set_events(options.events);
    return memory;
  }
  if (commands == nullptr || !subscriber) {
    throw std::invalid_argument(
        "scheduler: the redis provider needs a Redis connection and its configuration");
  }
  auto redis_options = options.redis;
  redis_options.events = options.events;
  auto redis = std::make_unique<redis_store>(*commands, std::move(*subscriber), redis_options);
  if (auto limits = limits_of(options.dispatch.types); !limits.empty()) {
    redis->set_limits(std::move(limits));  // a bad limit fails at construction
  }
  return redis;
}

std::unique_ptr<sink> make_sink(const asio::any_io_executor& executor,
                                const scheduler_options& options,
                                const handler_registry& handlers) {
  if (options.sink == sink_kind::direct) {
    return std::make_unique<direct_sink>(handlers);
  }
  return std::make_unique<schedule::kafka_sink>(executor, options.kafka, options.kafka_sink);
}

std::unique_ptr<kafka_worker> make_worker(const asio::any_io_executor& executor,
                                          const scheduler_options& options,
                                          const handler_registry& handlers) {
  if (options.sink != sink_kind::kafka || !options.kafka_consume) {
    return nullptr;
  }
  auto worker_options = options.kafka_worker;
  worker_options.topic = options.kafka_sink.topic;
  worker_options.run_timeout = options.dispatch.run_timeout;
  return std::make_unique<kafka_worker>(executor, options.kafka, handlers,
                                        std::move(worker_options));
}

}  // namespace

struct scheduler::sink_slot final : sink {
  explicit sink_slot(std::unique_ptr<sink> s) : current(std::move(s)) {}
  asio::awaitable<void> deliver(const claimed_task& t) override { co_await current->deliver(t); }
  bool available() const noexcept override { return current->available(); }
  std::unique_ptr<sink> current;
};

namespace {

// One entry of `scheduler.types` (a type name may contain dots, so the section is read as a
// JSON value and checked here, unknown keys included). A backoff field the entry leaves out
// is the dispatcher's (`global`: scheduler.retry_initial, retry_max; full jitter).
type_policy read_type_policy(const std::string& type, const json::value& value,
                             const backoff_policy& global) {
  const std::string where = "scheduler.types[\"" + type + "\"]";
  if (!value.is_object()) {
    throw config_error(where, "key '" + where + "' must be an object");
  }
  static const std::vector<std::string> known{"max_attempts",     "retry_initial", "retry_max",
                                              "retry_multiplier", "retry_jitter",  "run_timeout",
                                              "concurrency",      "rate"};
  for (const auto& entry : value.get_object()) {
    const std::string key(entry.key());
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string message = "unknown key '" + key + "' in '" + where + "'";
      if (const auto near = nearest_key(key, known)) {
        message += "; did you mean '" + *near + "'?";
      }
      throw config_error(where + "." + key, message);
    }
  }
  // The entry as a config of its own: durations and numbers read as everywhere else.
  const corvo::config entry(value.get_object(), where);
  type_policy p;
  if (entry.contains("max_attempts")) {
    p.max_attempts = entry.get<unsigned>("max_attempts");
    if (*p.max_attempts == 0) {
      throw config_error(where + ".max_attempts",
                         "key '" + where + ".max_attempts' must be at least 1");
    }
  }
  if (entry.contains("run_timeout")) {
    p.run_timeout = entry.get<std::chrono::milliseconds>("run_timeout");
  }
  if (entry.contains("concurrency")) {
    p.concurrency = entry.get<unsigned>("concurrency");
    if (*p.concurrency == 0) {
      throw config_error(where + ".concurrency",
                         "key '" + where + ".concurrency' must be at least 1");
    }
  }
  if (entry.contains("rate")) {
    try {
      p.rate = parse_rate(entry.get<std::string>("rate"), "key '" + where + ".rate'");
    } catch (const std::invalid_argument& e) {
      throw config_error(where + ".rate", e.what());
    }
  }
  if (entry.contains("retry_initial") || entry.contains("retry_max") ||
      entry.contains("retry_multiplier") || entry.contains("retry_jitter")) {
    retry_backoff b{global.initial, global.max, global.multiplier, global.jitter ? 1.0 : 0.0};
    b.initial = entry.get_or<std::chrono::milliseconds>("retry_initial", b.initial);
    b.max = entry.get_or<std::chrono::milliseconds>("retry_max", b.max);
    b.multiplier = entry.get_or<double>("retry_multiplier", b.multiplier);
    b.jitter = entry.get_or<double>("retry_jitter", b.jitter);
    try {
      validate(b, "key '" + where + "'");
    } catch (const std::invalid_argument& e) {
      throw config_error(where, e.what());
    }
    p.retry = b;
  }
  return p;
}

}  // namespace

scheduler_options scheduler_options::from(const corvo::config& cfg) {
  scheduler_options o;
  const auto section = cfg.section("scheduler");
  const bool provider_given = section.contains("provider");
  const auto name = section.get_or<std::string>("provider", "memory");
  if (name == "memory") {
    o.provider = provider::memory;
  } else if (name == "redis") {
    o.provider = provider::redis;
  } else if (name == "redis-kafka") {
    o.provider = provider::redis;
    o.sink = sink_kind::kafka;
  } else {
    throw config_error("scheduler.provider",
                       "key 'scheduler.provider' must be \"memory\", \"redis\" or "
                       "\"redis-kafka\", got \"" +
                           name + "\"");
  }
  if (section.contains("sink")) {
    const auto sink = section.get<std::string>("sink");
    if (sink == "direct") {
      o.sink = sink_kind::direct;
    } else if (sink == "kafka") {
      o.sink = sink_kind::kafka;
    } else {
      throw config_error("scheduler.sink",
                         "key 'scheduler.sink' must be \"direct\" or "
                         "\"kafka\", got \"" +
                             sink + "\"");
    }
  }
  o.redis.name_space = section.get_or<std::string>("namespace", o.redis.name_space);
  o.redis.shards = section.get_or<unsigned>("shards", o.redis.shards);
  o.memory_shards = section.get_or<unsigned>("shards", o.memory_shards);
  if (o.redis.shards == 0) {
    throw config_error("scheduler.shards", "key 'scheduler.shards' must be at least 1");
  }
  o.redis.priority_aging =
      section.get_or<std::chrono::milliseconds>("priority_aging", o.redis.priority_aging);
  const auto redis_section = section.section("redis");
  o.redis.wait_replicas = redis_section.get_or<unsigned>("wait_replicas", o.redis.wait_replicas);
  o.redis.wait_timeout =
      redis_section.get_or<std::chrono::milliseconds>("wait_timeout", o.redis.wait_timeout);
  const auto ahead = redis_section.get_or<std::uint64_t>(
      "claim_ahead_us", static_cast<std::uint64_t>(o.redis.claim_ahead.count()));
  if (ahead > 100'000) {
    throw config_error("scheduler.redis.claim_ahead_us",
                       "key 'scheduler.redis.claim_ahead_us' must be at most 100000 (100 ms)");
  }
  o.redis.claim_ahead = std::chrono::microseconds(ahead);
  o.redis.compatible_leases =
      redis_section.get_or<bool>("compatible_leases", o.redis.compatible_leases);
  o.redis.compact = redis_section.get_or<bool>("compact", o.redis.compact);
  o.redis.compact_after =
      redis_section.get_or<std::chrono::milliseconds>("compact_after", o.redis.compact_after);
  if (o.redis.compact_after < std::chrono::milliseconds::zero()) {
    throw config_error("scheduler.redis.compact_after",
                       "key 'scheduler.redis.compact_after' must not be negative");
  }
  if (o.redis.wait_replicas > 0 && o.redis.wait_timeout <= std::chrono::milliseconds::zero()) {
    throw config_error("scheduler.redis.wait_timeout",
                       "key 'scheduler.redis.wait_timeout' must be positive when "
                       "'scheduler.redis.wait_replicas' is set");
  }
  auto& d = o.dispatch;
  d.max_in_flight = section.get_or<std::size_t>("max_in_flight", d.max_in_flight);
  d.claim_batch = section.get_or<std::size_t>("claim_batch", d.claim_batch);
  d.lease = section.get_or<std::chrono::milliseconds>("lease", d.lease);
  d.max_sleep = section.get_or<std::chrono::milliseconds>("max_sleep", d.max_sleep);
  d.drain_timeout = section.get_or<std::chrono::milliseconds>("drain_timeout", d.drain_timeout);
  d.run_timeout = section.get_or<std::chrono::milliseconds>("run_timeout", d.run_timeout);
  d.retry_backoff.initial =
      section.get_or<std::chrono::milliseconds>("retry_initial", d.retry_backoff.initial);
  d.retry_backoff.max = section.get_or<std::chrono::milliseconds>("retry_max", d.retry_backoff.max);
  const auto types = section.get_or<json::value>("types", json::object{});
  if (!types.is_object()) {
    throw config_error("scheduler.types", "key 'scheduler.types' must be an object");
  }
  for (const auto& entry : types.get_object()) {
    const std::string type(entry.key());
    d.types.emplace(type, read_type_policy(type, entry.value(), d.retry_backoff));
  }

  const auto events_section = section.section("events");
  o.events.enabled = events_section.get_or<bool>("enabled", o.events.enabled);
  const auto max_len = events_section.get_or<std::uint64_t>("max_len", o.events.max_len);
  if (max_len == 0 || max_len > 100'000'000) {
    throw config_error("scheduler.events.max_len",
                       "key 'scheduler.events.max_len' must be between 1 and 100000000 (events "
                       "kept per shard), got " +
                           std::to_string(max_len));
  }
  o.events.max_len = static_cast<std::size_t>(max_len);
  o.redis.events = o.events;

  const auto kafka_section = section.section("kafka");
  auto& ks = o.kafka_sink;
  ks.topic = kafka_section.get_or<std::string>("topic", ks.topic);
  ks.health_interval =
      kafka_section.get_or<std::chrono::milliseconds>("health_interval", ks.health_interval);
  o.kafka_consume = kafka_section.get_or<bool>("consume", o.kafka_consume);
  auto& kc = o.kafka_worker.consumer;
  kc.max_attempts = kafka_section.get_or<unsigned>("max_attempts", kc.max_attempts);
  kc.dead_letter_topic =
      kafka_section.get_or<std::string>("dead_letter_topic", kc.dead_letter_topic);
  if (o.sink == sink_kind::kafka) {
    if (ks.topic.empty()) {
      throw config_error("scheduler.kafka.topic", "key 'scheduler.kafka.topic' is empty");
    }
    o.kafka = kafka::client_config::from(cfg, "kafka");
    if (!o.kafka.get("bootstrap.servers")) {
      throw config_error("kafka.bootstrap.servers",
                         "the Kafka sink needs key 'kafka.bootstrap.servers' (a broker list, or "
                         "\"embedded\" for the in-process cluster)");
    }
    if (!o.kafka.get(kafka::client_role::consumer, "group.id")) {
      o.kafka.set(kafka::client_role::consumer, "group.id", "corvo." + o.redis.name_space);
    }
  }
  // The provider and the Redis settings agree: no silent in-process store, no Redis store
  // without an address. (keys() does not count as asking for a key.)
  if (o.provider == provider::redis && !cfg.contains("redis.url") &&
      !cfg.contains("redis.cluster.seeds")) {
    throw config_error("redis.url",
                       "the redis provider (key 'scheduler.provider') needs key "
                       "'redis.url' or 'redis.cluster.seeds'");
  }
  if (o.provider == provider::memory && !provider_given && !cfg.keys("redis").empty()) {
    throw config_error("scheduler.provider",
                       "key 'scheduler.provider' is not set, so the scheduler would use the "
                       "in-process memory store although a 'redis' section is configured; "
                       "set it to \"redis\" (or \"redis-kafka\"), or to \"memory\" to "
                       "keep tasks in process");
  }
  if (o.provider == provider::memory && !section.keys("redis").empty()) {
    throw config_error("scheduler.redis",
                       "key 'scheduler.redis' configures the Redis store, "
                       "but key 'scheduler.provider' is \"memory\"");
  }
  cfg.reject_unknown_keys("scheduler");
  return o;
}

scheduler::scheduler(asio::any_io_executor executor, scheduler_options options,
                     redis::client* commands, std::optional<redis::client_config> subscriber)
    : executor_(executor),
      options_(std::move(options)),
      store_(make_store(executor, options_, commands, std::move(subscriber))),
      out_(std::make_unique<sink_slot>(make_sink(executor, options_, handlers_))),
      worker_(make_worker(executor, options_, handlers_)),
      dispatcher_(*store_, *out_, options_.dispatch) {}

scheduler::~scheduler() = default;

handler_registry& scheduler::handlers() noexcept {
  return handlers_;
}
store& scheduler::tasks() noexcept {
  return *store_;
}
dispatcher& scheduler::dispatcher() noexcept {
  return dispatcher_;
}
kafka_sink* scheduler::kafka_sink() noexcept {
  return dynamic_cast<schedule::kafka_sink*>(out_->current.get());
}
kafka_worker* scheduler::kafka_worker() noexcept {
  return worker_.get();
}
const dispatcher_stats& scheduler::dispatch_stats() const noexcept {
  return dispatcher_.stats();
}
const scheduler_options& scheduler::options() const noexcept {
  return options_;
}
bool scheduler::running() const noexcept {
  return running_;
}

const std::map<std::string, std::uint64_t, std::less<>>& scheduler::scheduled_by_type()
    const noexcept {
  return scheduled_;
}

std::uint64_t& scheduler::scheduled_counter(const std::string& type) {
  if (auto it = scheduled_.find(type); it != scheduled_.end()) {
    return it->second;
  }
  return scheduled_.emplace(type, 0).first->second;
}

asio::awaitable<void> scheduler::dispatch() {
  std::exception_ptr ended_by;
  try {
    co_await dispatcher_.run();
  } catch (...) {
    ended_by = std::current_exception();
  }
  // The dispatcher has drained: every delivery that completed was acknowledged, and the
  // tasks of the sends still open were handed back. What librdkafka still holds belongs to
  // those, so it is purged rather than flushed (flushing would publish them twice).
  if (auto* out = kafka_sink()) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await out->close(std::chrono::milliseconds(0));
  }
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

asio::awaitable<void> scheduler::consume() {
  co_await worker_->run();
}

asio::awaitable<void> scheduler::run() {
  if (running_) {
    throw std::logic_error("scheduler::run() is already running");
  }
  if (ran_ && options_.sink == sink_kind::kafka) {
    // The last run closed the producer and the consumer: this run gets new ones.
    out_->current = make_sink(executor_, options_, handlers_);
    worker_ = make_worker(executor_, options_, handlers_);
  }
  ran_ = true;
  running_ = true;
  std::exception_ptr ended_by;
  try {
    co_await run_once();
  } catch (...) {
    ended_by = std::current_exception();
  }
  running_ = false;
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

asio::awaitable<void> scheduler::run_once() {
  if (!worker_) {
    co_await dispatch();
    co_return;
  }
  const auto executor = co_await asio::this_coro::executor;
  task_group parts(executor);
  co_await parts.spawn(dispatch());
  co_await parts.spawn(consume());
  co_await parts.join();
}

void scheduler::apply_policy(task& t) const {
  if (t.max_attempts != 0) {
    return;
  }
  const auto it = options_.dispatch.types.find(t.type);
  t.max_attempts = it != options_.dispatch.types.end() && it->second.max_attempts
                       ? *it->second.max_attempts
                       : default_max_attempts;
}

asio::awaitable<void> scheduler::schedule(task t) {
  apply_policy(t);
  const auto shard = store_->shard_of(t.id);
  auto& scheduled = scheduled_counter(t.type);
  co_await store_->schedule(std::move(t));
  ++scheduled;
  dispatcher_.wake(shard);
}

asio::awaitable<bool> scheduler::schedule_if_absent(task t) {
  apply_policy(t);
  const auto shard = store_->shard_of(t.id);
  auto& scheduled = scheduled_counter(t.type);
  const bool added = co_await store_->schedule_if_absent(std::move(t));
  if (added) {
    ++scheduled;
    dispatcher_.wake(shard);
  }
  co_return added;
}

asio::awaitable<dedup_outcome> scheduler::schedule_deduplicated(task t, dedup_options options) {
  apply_policy(t);
  const auto shard = store_->shard_of(t.id);
  auto& scheduled = scheduled_counter(t.type);
  const auto outcome = co_await store_->schedule_deduplicated(std::move(t), options);
  if (outcome != dedup_outcome::dropped) {
    ++scheduled;
    dispatcher_.wake(shard);
  }
  co_return outcome;
}

asio::awaitable<dedup_result> scheduler::schedule_deduplicated_by_key(task t, std::string key,
                                                                      dedup_options options) {
  apply_policy(t);
  const auto shard = store_->shard_of(t.id);
  auto& scheduled = scheduled_counter(t.type);
  auto result =
      co_await store_->schedule_deduplicated_by_key(std::move(t), std::move(key), options);
  if (result.outcome != dedup_outcome::dropped) {
    ++scheduled;
    dispatcher_.wake(shard);
  }
  co_return result;
}

asio::awaitable<void> scheduler::pause(std::string type) {
  co_await store_->pause(std::move(type));
}

asio::awaitable<void> scheduler::resume(std::string type) {
  co_await store_->resume(std::move(type));
  for (unsigned shard = 0; shard < store_->shards(); ++shard) {
    dispatcher_.wake(shard);
  }
}

asio::awaitable<pause_state> scheduler::paused() {
  co_return co_await store_->paused();
}

namespace {

// schedule_many's tasks that were stored: all when it succeeded, all but the ones named by a
// schedule_many_error, none after another failure (cancellation: which were sent is unknown).
void count_stored(const std::vector<std::string>& ids, const std::vector<std::uint64_t*>& counters,
                  const std::exception_ptr& failed) {
  std::vector<std::string> not_stored;
  if (failed) {
    try {
      std::rethrow_exception(failed);
    } catch (const schedule_many_error& e) {
      not_stored = e.failed_ids();
      std::sort(not_stored.begin(), not_stored.end());
    } catch (...) {
      return;
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!std::binary_search(not_stored.begin(), not_stored.end(), ids[i])) {
      ++*counters[i];
    }
  }
}

}  // namespace

asio::awaitable<void> scheduler::schedule_many(std::vector<task> tasks, std::size_t window) {
  std::vector<std::string> ids;
  std::vector<std::uint64_t*> counters;  // each task's scheduled_by_type() counter
  ids.reserve(tasks.size());
  counters.reserve(tasks.size());
  for (auto& t : tasks) {
    apply_policy(t);
    ids.push_back(t.id);
    counters.push_back(&scheduled_counter(t.type));
  }
  std::exception_ptr failed;
  try {
    co_await store_->schedule_many(std::move(tasks), window);
  } catch (...) {
    failed = std::current_exception();
  }
  count_stored(ids, counters, failed);
  // The shard count is known once the store has opened (on its first call); wake after a
  // partial failure too: the other tasks were scheduled.
  std::vector<bool> touched(store_->shards(), false);
  if (!touched.empty()) {
    for (const auto& id : ids) {
      touched[store_->shard_of(id)] = true;
    }
  }
  for (unsigned shard = 0; shard < touched.size(); ++shard) {
    if (touched[shard]) {
      dispatcher_.wake(shard);
    }
  }
  if (failed) {
    std::rethrow_exception(failed);
  }
}

asio::awaitable<void> scheduler::schedule(std::string id, std::string type, json::value payload,
                                          time_point due, std::uint32_t max_attempts) {
  task t;  // built here, in this frame: no task temporary in the caller's co_await
  t.id = std::move(id);
  t.type = std::move(type);
  t.payload = std::move(payload);
  t.due = due;
  t.max_attempts = max_attempts;
  co_await schedule(std::move(t));
}

asio::awaitable<std::optional<task>> scheduler::get(std::string id) {
  co_return co_await store_->get(std::move(id));
}

asio::awaitable<std::vector<task>> scheduler::browse(std::size_t offset, std::size_t limit) {
  co_return co_await store_->browse(offset, limit);
}

asio::awaitable<bool> scheduler::cancel(std::string id) {
  co_return co_await store_->cancel(std::move(id));
}

asio::awaitable<bool> scheduler::reschedule(std::string id, time_point due) {
  const auto shard = store_->shard_of(id);
  const bool moved = co_await store_->reschedule(std::move(id), due);
  dispatcher_.wake(shard);
  co_return moved;
}

asio::awaitable<store_stats> scheduler::stats() {
  co_return co_await store_->stats();
}

asio::awaitable<std::vector<task>> scheduler::dead_letters(std::size_t offset, std::size_t limit) {
  co_return co_await store_->dead_letters(offset, limit);
}

asio::awaitable<bool> scheduler::replay(std::string id) {
  const auto shard = store_->shard_of(id);
  const bool replayed = co_await store_->replay(std::move(id));
  dispatcher_.wake(shard);
  co_return replayed;
}

asio::awaitable<std::size_t> scheduler::purge(std::string id) {
  co_return co_await store_->purge(std::move(id));
}

asio::awaitable<std::unique_ptr<event_reader>> scheduler::events(event_query query) {
  co_return co_await store_->events(std::move(query));
}

}  // namespace corvo::schedule
