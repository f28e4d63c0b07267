#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/scheduler.hpp>

#include <stdexcept>

namespace corvo::schedule {
namespace {

std::unique_ptr<store> make_store(const asio::any_io_executor& executor,
                                  const scheduler_options& options, redis::client* commands,
                                  std::optional<redis::client_config> subscriber) {
  if (options.provider == provider::memory) {
    return std::make_unique<memory_store>(executor, options.memory_shards);
  }
  if (commands == nullptr || !subscriber) {
    throw std::invalid_argument(
        "scheduler: the redis provider needs a Redis connection and its configuration");
  }
  return std::make_unique<redis_store>(*commands, std::move(*subscriber), options.redis);
}

}  // namespace

scheduler_options scheduler_options::from(const corvo::config& cfg) {
  scheduler_options o;
  const auto section = cfg.section("scheduler");
  const auto name = section.get_or<std::string>("provider", "memory");
  if (name == "memory") {
    o.provider = provider::memory;
  } else if (name == "redis") {
    o.provider = provider::redis;
  } else {
    throw config_error("scheduler.provider",
                       "key 'scheduler.provider' must be \"memory\" or \"redis\", got \"" + name +
                           "\"");
  }
  o.redis.name_space = section.get_or<std::string>("namespace", o.redis.name_space);
  o.redis.shards = section.get_or<unsigned>("shards", o.redis.shards);
  o.memory_shards = section.get_or<unsigned>("shards", o.memory_shards);
  if (o.redis.shards == 0) {
    throw config_error("scheduler.shards", "key 'scheduler.shards' must be at least 1");
  }
  auto& d = o.dispatch;
  d.max_in_flight = section.get_or<std::size_t>("max_in_flight", d.max_in_flight);
  d.claim_batch = section.get_or<std::size_t>("claim_batch", d.claim_batch);
  d.lease = section.get_or<std::chrono::milliseconds>("lease", d.lease);
  d.max_sleep = section.get_or<std::chrono::milliseconds>("max_sleep", d.max_sleep);
  d.drain_timeout = section.get_or<std::chrono::milliseconds>("drain_timeout", d.drain_timeout);
  d.retry_backoff.initial =
      section.get_or<std::chrono::milliseconds>("retry_initial", d.retry_backoff.initial);
  d.retry_backoff.max = section.get_or<std::chrono::milliseconds>("retry_max", d.retry_backoff.max);
  return o;
}

scheduler::scheduler(asio::any_io_executor executor, scheduler_options options,
                     redis::client* commands, std::optional<redis::client_config> subscriber)
    : options_(std::move(options)),
      store_(make_store(executor, options_, commands, std::move(subscriber))),
      sink_(handlers_),
      dispatcher_(*store_, sink_, options_.dispatch) {}

scheduler::~scheduler() = default;

handler_registry& scheduler::handlers() noexcept { return handlers_; }
store& scheduler::tasks() noexcept { return *store_; }
const dispatcher_stats& scheduler::dispatch_stats() const noexcept { return dispatcher_.stats(); }
const scheduler_options& scheduler::options() const noexcept { return options_; }

asio::awaitable<void> scheduler::run() { co_await dispatcher_.run(); }

asio::awaitable<void> scheduler::schedule(task t) {
  const auto shard = store_->shard_of(t.id);
  co_await store_->schedule(std::move(t));
  dispatcher_.wake(shard);
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

asio::awaitable<store_stats> scheduler::stats() { co_return co_await store_->stats(); }

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

}  // namespace corvo::schedule
