#pragma once
// The durable store: tasks in Redis, claimed by Lua scripts (see src/schedule/redis_scripts.hpp
// for the key layout). Any number of processes can share a namespace; leases and fencing
// tokens keep one task with one live worker at a time.

#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/store.hpp>
#include <memory>
#include <string>

namespace corvo::schedule {

struct redis_store_options {
  /// Key prefix: keys are `{<name_space>:<shard>}:due` etc.
  std::string name_space = "corvo";
  /// Shards of the namespace (fixed for its lifetime: changing it re-homes task ids).
  unsigned shards = 16;
  /// Dead-letter cap per shard: oldest entries beyond it are dropped.
  std::size_t dead_max_count = 100'000;
  std::chrono::seconds dead_max_age = std::chrono::hours(24 * 7);
};

class redis_store final : public store {
 public:
  /// `commands` carries every store call (the caller runs it); a standalone server or a
  /// Redis Cluster (every call touches one shard, i.e. one hash slot). `subscriber`
  /// configures the separate client watch_wakes() opens for SSUBSCRIBE (in a cluster it
  /// subscribes each shard's channel on the node that owns it).
  redis_store(redis::client& commands, redis::client_config subscriber,
              redis_store_options options = {});
  ~redis_store() override;

  const redis_store_options& options() const noexcept;

  unsigned shards() const noexcept override;
  unsigned shard_of(std::string_view id) const noexcept override;

  asio::awaitable<void> schedule(task t) override;
  asio::awaitable<std::optional<task>> get(std::string id) override;
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> cancel(std::string id) override;
  asio::awaitable<bool> reschedule(std::string id, time_point due) override;
  asio::awaitable<store_stats> stats() override;

  asio::awaitable<claim_result> claim(unsigned shard, std::size_t limit,
                                      std::chrono::milliseconds lease) override;
  asio::awaitable<std::size_t> ack(unsigned shard, std::vector<completion> done) override;
  asio::awaitable<bool> nack(unsigned shard, failure failed) override;
  asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<lease_ref> leases,
                                            std::chrono::milliseconds lease) override;

  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> replay(std::string id) override;
  asio::awaitable<std::size_t> purge(std::string id) override;

  asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) override;

  /// The keys of a shard, in the scripts' KEYS order (due, tasks, inflight, lease, dead, seq,
  /// wake channel). For tools and tests.
  std::vector<std::string> keys_of(unsigned shard) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
