#pragma once
// A process under per-slot-owner health supervision on a Redis Cluster, for the cluster
// failover tests (issue 16): a health::app on its own thread with a cluster client
// (service), redis_cluster_health, and
// - one user "writer" component per key (INCR every 20 ms), on the slot dependency of its key;
// - one stream consumer component per stream (group "g"), on the slot dependency of its
//   stream, fed by a producer that appends batches and WAITs for the stream's replica
//   target in the same request (a dedicated client: WAIT blocks its connection);
// - a scheduler dispatcher (redis_store, direct sink) on the whole-cluster dependency whose
//   shards pause by health::shard_gate while their master is down. Its store is wrapped to
//   record every claim call per shard; a producer schedules one task due now every 20 ms
//   into the shards that are not paused by the test (without WAIT: before killing a master
//   the test pauses its shards and waits for its replica to catch up).
// Every supervision and slot-dependency transition is recorded with its time. The test
// thread controls the cluster and reads the state through the accessors (locked copies).

#include <chrono>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/redis/client.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace corvo::test {

using steady_time = std::chrono::steady_clock::time_point;

struct cluster_failover_options {
  std::vector<std::string> seeds;
  std::vector<std::string> writer_keys;
  std::vector<std::string> stream_keys;
  /// Scheduler namespace and shard count (0 shards: no scheduler).
  std::string name_space = "gate";
  unsigned shards = 0;
  std::chrono::milliseconds lease{3000};
  /// drain_timeout of the stream consumers: the library's default, so that a stop bounded
  /// by it (an acknowledgement waiting for a hung or dead master) is seen as an overrun.
  std::chrono::milliseconds stream_drain_timeout{10'000};
  /// redis_cluster_health::reset_when_down on the client: a hung master's connections are
  /// dropped when its slots go down.
  bool reset_when_down = true;
};

/// A supervised component's life.
struct component_life {
  bool running = false;
  std::uint64_t starts = 0;
  std::uint64_t stops = 0;
  steady_time stopped{};
  steady_time started{};
  /// Each stop: when it began and how long it took (cancellation to the component's end).
  std::vector<std::pair<steady_time, std::chrono::milliseconds>> stop_log;
};

/// Down/up transitions of one dependency (in order).
struct dependency_history {
  std::vector<steady_time> down;
  std::vector<steady_time> up;
};

/// One stream's production and consumption.
struct stream_tally {
  std::set<std::string> durable;    ///< ids answered and replicated to the WAIT target
  std::size_t failed_batches = 0;   ///< appends that failed or were not replicated
  std::map<std::string, int> runs;  ///< id -> handler runs
  std::string held;                 ///< the entry held by hold_next_entry (once it started)
};

/// The scheduler's production, runs and claim calls.
struct scheduler_tally {
  std::map<std::string, unsigned> produced;              ///< id -> shard, schedule() returned
  std::map<std::string, int> runs;                       ///< id -> handler runs
  std::map<unsigned, std::vector<steady_time>> claims;   ///< shard -> claim call times
  std::map<unsigned, std::vector<steady_time>> started;  ///< shard -> run start times
  std::size_t failed_schedules = 0;
};

class cluster_failover_process {
 public:
  explicit cluster_failover_process(cluster_failover_options options);
  /// Stops producing, drains the app and joins its thread.
  ~cluster_failover_process();
  cluster_failover_process(const cluster_failover_process&) = delete;
  cluster_failover_process& operator=(const cluster_failover_process&) = delete;

  /// Component names: "writer KEY", "stream KEY", "scheduler".
  component_life life(const std::string& component);
  std::vector<std::string> components();
  /// The history of the slot dependency of `key` (e.g. "{gate:3}" or a stream key).
  dependency_history slot_history(const std::string& key);
  stream_tally stream(const std::string& key);
  scheduler_tally scheduler();
  /// These shards get no new tasks until resumed; returns once no schedule call is in flight.
  void pause_producing(const std::set<unsigned>& shards);
  void resume_producing(const std::set<unsigned>& shards);
  /// The WAIT target of a stream's appends (1 by default).
  void set_replicas(const std::string& stream_key, int replicas);
  /// Stops every producer and waits until their requests have returned.
  void stop_producing();
  /// The next entry of `stream_key` to start is held by its handler until its component
  /// ("stream KEY") begins to stop; then the handler succeeds at once, so its XACK is sent
  /// while the component stops (stream_tally::held names it once it started; it is cleared
  /// by this call).
  void hold_next_entry(const std::string& stream_key);

  health::status cluster_state();
  std::string cluster_detail();

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
  std::thread loop_;
};

}  // namespace corvo::test
