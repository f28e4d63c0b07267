#pragma once
// The scheduler's shard loops under per-slot-owner health: in a Redis Cluster each shard `s`
// of a scheduler namespace keeps its keys under the hash tag `{<namespace>:<s>}`, so one
// master owns all of them. A shard whose master is down (or hung) pauses its claims while
// the shards on healthy masters go on:
//
//   health::redis_cluster_health cluster(monitor, *redis.cluster());
//   options.dispatch.shard_available = health::shard_gate(
//       health::scheduler_shard_dependencies(cluster, "corvo", 16));
//
// Paused claims are the claim loop's only reaction: runs already claimed go on (their acks
// and lease renewals on the failed master fail and are retried, and an unacknowledged task
// comes back when its lease expires, as after any failure).

#include <corvo/health/monitor.hpp>
#include <corvo/health/probes.hpp>
#include <functional>
#include <string_view>
#include <vector>

namespace corvo::health {

/// The slot dependency of every shard of `name_space` (the slot of `{<name_space>:<s>}`).
std::vector<dependency> scheduler_shard_dependencies(redis_cluster_health& cluster,
                                                     std::string_view name_space, unsigned shards);

/// A schedule::dispatcher_options::shard_available predicate: shard `s` is available unless
/// `shard_dependencies[s]` is down (shards beyond the list are always available). Read on
/// the dispatcher's executor, which must be the monitor's.
std::function<bool(unsigned shard)> shard_gate(std::vector<dependency> shard_dependencies);

}  // namespace corvo::health
