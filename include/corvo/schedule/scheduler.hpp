#pragma once
// The scheduler API: a store chosen by configuration, handlers by task type, and a
// dispatcher, behind one object.
//
//   corvo::schedule::scheduler s(ex, scheduler_options::from(cfg), &redis_conn, redis_cfg);
//   s.handlers().on<email_timeout>("email.timeout", send_timeout_notice);
//   co_spawn(ex, s.run(), on_error);                       // dispatch until cancelled
//   co_await s.schedule({.id = "order-42", .type = "email.timeout", .payload = ...,
//                        .due = schedule::now() + 30min});
//
// Providers (`scheduler.provider`):
//   memory  in-process store, same semantics minus durability (the embedded default);
//   redis   durable Redis store, handlers run in this process (direct sink).
// Configuration keys (all optional): scheduler.provider, scheduler.namespace,
// scheduler.shards, scheduler.max_in_flight, scheduler.claim_batch, scheduler.lease,
// scheduler.max_sleep, scheduler.drain_timeout, scheduler.retry_initial, scheduler.retry_max.

#include <corvo/core/config.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>

#include <memory>
#include <optional>

namespace corvo::schedule {

enum class provider { memory, redis };

struct scheduler_options {
  schedule::provider provider = provider::memory;
  redis_store_options redis{};
  unsigned memory_shards = 4;
  dispatcher_options dispatch{};

  /// Reads the `scheduler` section (see the file comment). Throws config_error naming the
  /// key for a bad value, e.g. an unknown provider.
  static scheduler_options from(const corvo::config& cfg);
};

class scheduler {
 public:
  /// `commands` (run by the caller) and `subscriber` are required by the redis provider and
  /// ignored by the memory provider; a redis provider without them throws
  /// std::invalid_argument.
  scheduler(asio::any_io_executor executor, scheduler_options options,
            redis::client* commands = nullptr, std::optional<redis::client_config> subscriber = {});
  ~scheduler();

  handler_registry& handlers() noexcept;
  store& tasks() noexcept;
  const dispatcher_stats& dispatch_stats() const noexcept;
  const scheduler_options& options() const noexcept;

  /// Dispatches due tasks until cancelled (see dispatcher::run).
  asio::awaitable<void> run();

  /// Adds or replaces a task, and wakes this process's dispatcher for it.
  asio::awaitable<void> schedule(task t);
  asio::awaitable<std::optional<task>> get(std::string id);
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit);
  asio::awaitable<bool> cancel(std::string id);
  asio::awaitable<bool> reschedule(std::string id, time_point due);
  asio::awaitable<store_stats> stats();
  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit);
  asio::awaitable<bool> replay(std::string id);
  asio::awaitable<std::size_t> purge(std::string id);

 private:
  scheduler_options options_;
  std::unique_ptr<store> store_;
  handler_registry handlers_;
  direct_sink sink_;
  dispatcher dispatcher_;
};

}  // namespace corvo::schedule
