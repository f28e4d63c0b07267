#pragma once
// A real Redis Cluster for integration tests: 3 masters with one replica each by default,
// every node a `redis_server` on its own free port (with a free cluster bus port) in its
// own temp dir, joined with `redis-cli --cluster create`. Nodes are addressed by their
// index in the fixture, which stays the same across kills, restarts and failovers; the
// roles are read from the cluster (CLUSTER NODES) whenever they are asked for.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/redis_server.hpp"

namespace corvo::test {

struct redis_cluster_options {
  std::size_t masters = 3;
  std::size_t replicas_per_master = 1;
  /// `cluster-node-timeout`: how long a node may be silent before it counts as failing.
  /// Small, so that failover takes a few seconds.
  int node_timeout_ms = 1000;
  /// AOF on every node.
  bool append_only = false;
  /// Raw config lines for every node.
  std::vector<std::string> extra_config;
};

enum class redis_role { master, replica, unknown };

/// One node as the cluster sees it at the time of the call.
struct redis_cluster_node {
  std::size_t index = 0;  ///< position in the fixture
  std::string id;         ///< cluster node id (kept across restarts, in nodes.conf)
  std::uint16_t port = 0;
  redis_role role = redis_role::unknown;
  std::string master_id;  ///< for a replica: the id of its master
  bool failed = false;    ///< flagged `fail` or `fail?` by the observing node
  bool running = false;   ///< the fixture's process is alive
  /// Slot ranges [first, last] this node serves (masters only).
  std::vector<std::pair<int, int>> slots;
};

class redis_cluster {
 public:
  static constexpr int slot_count = 16384;

  /// Starts all nodes, creates the cluster and waits until every node reports
  /// `cluster_state:ok` with all slots covered and every replica is in sync with its master.
  /// Throws `std::runtime_error` (with redis-cli output or a node's log) on failure.
  explicit redis_cluster(redis_cluster_options options = {});
  /// Kills every node and removes their dirs.
  ~redis_cluster();
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  std::size_t size() const noexcept { return servers_.size(); }
  /// Node `index` as a server (port, url, cli, kill, running ...).
  redis_server& node(std::size_t index) { return *servers_.at(index); }
  /// Every node as the cluster currently sees it (from a running node's CLUSTER NODES).
  std::vector<redis_cluster_node> nodes();
  /// Indices of the nodes that currently serve as masters (running, not flagged failed).
  std::vector<std::size_t> masters();
  /// Indices of the nodes that currently serve as replicas (running, not flagged failed).
  std::vector<std::size_t> replicas();
  /// `redis://127.0.0.1:port` of every node, for a client's seed list.
  std::vector<std::string> seed_urls() const;
  /// The cluster node id of node `index` (fixed at creation).
  const std::string& node_id(std::size_t index) const { return ids_.at(index); }

  /// The slot of `key` (asked of the cluster: CLUSTER KEYSLOT).
  int key_slot(std::string_view key);
  /// Index of the master that owns `slot` in the current view; throws if none does.
  std::size_t node_for_slot(int slot);

  /// SIGKILL node `index` (remembering its replicas for `wait_for_failover`).
  void kill_node(std::size_t index);
  /// Starts node `index` again on the same port with its dir and nodes.conf, and waits
  /// until it answers PING (not until the cluster is ok again: see `wait_for_state_ok`).
  void restart_node(std::size_t index);

  /// After master `killed_master_index` was killed: waits until one of its replicas
  /// reports role master and the cluster is ok again (`wait_for_state_ok`). Returns the port
  /// of the promoted replica. Throws `std::runtime_error` on timeout or if it had no replica.
  std::uint16_t wait_for_failover(std::size_t killed_master_index,
                                  std::chrono::milliseconds timeout = std::chrono::seconds{60});

  /// Waits until every running node reports `cluster_state:ok` with all slots ok, all of
  /// them see the same topology (role, master and slots of every running node), and none
  /// of them sees a running node as failed. Throws `std::runtime_error` with the last observed state on timeout.
  void wait_for_state_ok(std::chrono::milliseconds timeout = std::chrono::seconds{60});

 private:
  // The problem with the cluster right now, or an empty string if it is ok.
  std::string state_problem(bool require_all_known);
  std::vector<redis_cluster_node> view_of(std::size_t observer);
  std::size_t any_running_node();
  std::size_t index_of_port(std::uint16_t port) const;

  redis_cluster_options options_;
  std::vector<std::unique_ptr<redis_server>> servers_;
  std::vector<std::string> ids_;
  std::map<std::size_t, std::vector<std::size_t>> replicas_of_killed_;
};

}  // namespace corvo::test
