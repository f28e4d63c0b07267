#pragma once
// The cluster topology as the client sees it: which master serves each of the 16384 slots,
// and the replicas of every master. Plain data, no I/O: built from a CLUSTER SLOTS or
// CLUSTER SHARDS reply (as a generic_response), patched by MOVED redirections.
//
//   error_code ec;
//   auto map = slot_map::from_cluster_slots(reply, "10.0.0.7", ec);  // the replying host
//   if (const cluster_node* owner = map.master_of(key_slot("user:1"))) connect(*owner);
//   map.move_slot(3999, cluster_node{"10.0.0.8", "6381"});          // after a MOVED
//
// Also here: parsing of the cluster error replies the client reacts to (MOVED, ASK,
// TRYAGAIN, CLUSTERDOWN, ...).

#include <boost/system/error_code.hpp>
#include <corvo/redis/response.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::redis {

/// One node's endpoint as the cluster announces it.
struct cluster_node {
  std::string host;
  std::string port;
  /// The cluster node id; empty when unknown (a node learnt from a MOVED).
  std::string id;

  /// "host:port" (IPv6 hosts are not bracketed, as Redis prints them).
  std::string address() const { return host + ":" + port; }
  friend bool operator==(const cluster_node&, const cluster_node&) = default;
};

/// A master, its replicas and the slot ranges it serves.
struct cluster_shard {
  cluster_node master;
  std::vector<cluster_node> replicas;
  /// Inclusive [first, last] ranges as reported (a MOVED adds single-slot ranges).
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
};

class slot_map {
 public:
  /// The shard index of a slot nobody serves.
  static constexpr std::uint16_t no_shard = 0xffff;

  /// An empty map: no slot has an owner.
  slot_map();

  /// From a CLUSTER SLOTS reply (RESP2 or RESP3 shape). Entries whose host is empty or
  /// "?" (the node does not know its own address) get `replying_host`. Sets `ec`
  /// (error::type_mismatch) when the reply does not have the documented shape.
  static slot_map from_cluster_slots(const generic_response& reply, std::string_view replying_host,
                                     boost::system::error_code& ec);

  /// From a CLUSTER SHARDS reply (Redis >= 7). Replicas whose health is not "online" are
  /// left out; a master is kept whatever its health (it still owns its slots until a
  /// failover says otherwise).
  static slot_map from_cluster_shards(const generic_response& reply, std::string_view replying_host,
                                      boost::system::error_code& ec);

  /// The master serving `slot`, or null.
  const cluster_node* master_of(std::uint16_t slot) const noexcept;
  /// Index into shards() of the shard serving `slot`, or no_shard.
  std::uint16_t shard_of(std::uint16_t slot) const noexcept { return owner_[slot]; }

  /// Records a MOVED: `slot` is now served by `node` (a known master, matched by address,
  /// or a new shard). Returns true when this changed the owner.
  bool move_slot(std::uint16_t slot, const cluster_node& node);

  const std::vector<cluster_shard>& shards() const noexcept { return shards_; }
  /// Number of slots that have an owner (16384 when the cluster is fully covered).
  std::size_t covered_slots() const noexcept;
  bool empty() const noexcept { return shards_.empty(); }
  /// True when `address` ("host:port") is the master of a shard.
  bool is_master(std::string_view address) const;
  /// Every node (masters first, then replicas), each address once.
  std::vector<cluster_node> all_nodes() const;

  /// Same owners for every slot and same masters (replicas and ids ignored).
  bool same_routing(const slot_map& other) const;

 private:
  std::uint16_t shard_index(const cluster_node& master);

  std::vector<cluster_shard> shards_;
  std::vector<std::uint16_t> owner_;  // slot -> index into shards_, or no_shard
};

/// A MOVED or ASK redirection.
struct redirection {
  enum class kind { moved, ask };
  kind type = kind::moved;
  std::uint16_t slot = 0;
  /// May be empty ("MOVED 3999 :6381" when the target does not know its address): the
  /// caller substitutes the host of the node that replied.
  std::string host;
  std::string port;

  std::string address() const { return host + ":" + port; }
};

/// Parses "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (an error reply's
/// text); the port follows the last ':' so IPv6 hosts work. nullopt for anything else.
std::optional<redirection> parse_redirection(std::string_view error_text);

/// How the cluster client treats an error reply.
enum class cluster_error_kind {
  /// Not a cluster condition: the reply goes to the caller.
  none,
  /// MOVED: the slot has a new owner; update the map and retry there.
  moved,
  /// ASK: the key is being migrated; retry once on the target after ASKING.
  ask,
  /// TRYAGAIN (multi-key request during a migration), LOADING, MASTERDOWN: retry after a
  /// pause on the same owner.
  try_again,
  /// CLUSTERDOWN: the cluster cannot serve the slot right now; refresh and retry.
  cluster_down,
  /// READONLY: the node became a replica (failover); refresh and retry on the new master.
  not_master,
};

/// Classifies an error reply's text. None of the retried kinds has executed the command,
/// so retrying them is always safe.
cluster_error_kind classify_cluster_error(std::string_view error_text) noexcept;

}  // namespace corvo::redis
