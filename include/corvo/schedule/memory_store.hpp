#pragma once
// The in-process store: the same semantics as redis_store (leases, fencing tokens, shards,
// dead-letter caps, wake-ups when a task lands ahead of a shard's head) without durability.
// For tests, samples and single-process deployments (`scheduler.provider = memory`).
//
// Single-threaded: every call must run on the one executor the store was made for (as an
// io_context with one thread, or a strand). Calls never suspend, except watch_wakes().

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <corvo/schedule/store.hpp>
#include <cstddef>
#include <functional>
#include <memory>

namespace corvo::schedule {

/// Caps of each shard's dead-letter set, applied when a task is dead-lettered: entries
/// older than `max_age` go first, then the oldest beyond `max_count` (as redis_store's
/// dead_max_age / dead_max_count).
struct dead_letter_limits {
  std::size_t max_count = 100'000;
  std::chrono::microseconds max_age = std::chrono::hours(24 * 7);
};

class memory_store final : public store {
 public:
  /// Throws std::invalid_argument when `shards` is 0.
  explicit memory_store(asio::any_io_executor executor, unsigned shards = 1,
                        dead_letter_limits limits = {});
  ~memory_store() override;
  memory_store(const memory_store&) = delete;
  memory_store& operator=(const memory_store&) = delete;

  const asio::any_io_executor& get_executor() const noexcept;
  const dead_letter_limits& limits() const noexcept;

  /// Replaces the store's clock (schedule::now by default), which plays the part of the
  /// Redis server's TIME: claim's store_now, lease deadlines, retry and dead-letter times.
  /// For tests and simulations.
  void set_clock(std::function<time_point()> clock);
  /// The priority rule's step (redis_store_options::priority_aging; default 10 s).
  void set_priority_aging(std::chrono::milliseconds aging);
  /// Task events (events.hpp), off by default: on, each change appends its event to the
  /// shard's in-process buffer, which keeps the last `max_len` (exactly). Throws
  /// std::invalid_argument for a max_len of 0. Changing it keeps the events held (trimmed to
  /// the new cap on the next event).
  void set_events(events_options options);

  unsigned shards() const noexcept override;
  /// schedule::shard_of(id, shards()): the function redis_store uses.
  unsigned shard_of(std::string_view id) const noexcept override;

  /// Throws std::invalid_argument for an empty id, an empty type, a type with a newline or
  /// an invalid own retry backoff (validate). max_attempts 0 is stored as
  /// default_max_attempts. Resets attempts and last_error.
  asio::awaitable<void> schedule(task t) override;
  asio::awaitable<bool> schedule_if_absent(task t) override;
  asio::awaitable<dedup_outcome> schedule_deduplicated(task t, dedup_options options) override;
  /// The windows by key are the store's (not a shard's); closed ones are forgotten at the
  /// next call.
  asio::awaitable<dedup_result> schedule_deduplicated_by_key(task t, std::string key,
                                                             dedup_options options) override;
  asio::awaitable<std::optional<task>> get(std::string id) override;
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> cancel(std::string id) override;
  asio::awaitable<bool> reschedule(std::string id, time_point due) override;
  asio::awaitable<store_stats> stats() override;

  /// Throws std::out_of_range for a shard >= shards() (as do ack, nack and extend).
  asio::awaitable<claim_result> claim(unsigned shard, std::size_t limit,
                                      std::chrono::milliseconds lease) override;
  asio::awaitable<std::size_t> ack(unsigned shard, std::vector<completion> done) override;
  asio::awaitable<bool> nack(unsigned shard, failure failed) override;
  asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<lease_ref> leases,
                                            std::chrono::milliseconds lease) override;

  asio::awaitable<void> pause(std::string type) override;
  asio::awaitable<void> resume(std::string type) override;
  asio::awaitable<pause_state> paused() override;

  /// Limits in this process (the store is one process's): as redis_store's, with the
  /// store's clock. Setting a type's limit again unchanged keeps its permits (each
  /// dispatcher of the store sets them); a changed limit starts afresh. A held task keeps
  /// its place when limits change.
  void set_limits(type_limits limits) override;
  asio::awaitable<std::vector<limit_state>> limit_states() override;

  /// Readers wait on the store's executor (no polling) and are woken by each new event.
  /// A position is each shard's sequence number; a reader whose next event was trimmed goes
  /// on at the oldest held.
  asio::awaitable<std::unique_ptr<event_reader>> events(event_query query) override;
  event_counts events_written() const noexcept override;

  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> replay(std::string id) override;
  asio::awaitable<std::size_t> purge(std::string id) override;

  /// `on_wake` is posted to the caller's executor for every wake-up. Waits (on a timer,
  /// without polling) until cancelled; then unregisters `on_wake` and throws
  /// system_error(operation_aborted). Wake-ups already posted when it is cancelled are
  /// dropped. Honours terminal cancellation.
  asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) override;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
