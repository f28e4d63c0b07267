// The Redis Cluster fixture gives tests a real 3-master / 3-replica cluster: keys are
// routed by slot (MOVED without -c), readable from any node with -c, and a killed master is
// replaced by its replica.

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <set>
#include <string>

#include "support/child_process.hpp"
#include "support/redis_cluster.hpp"

using namespace std::chrono_literals;
using corvo::test::redis_cluster;
using corvo::test::redis_role;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A node index other than the ones given.
std::size_t other_than(const redis_cluster& cluster, std::set<std::size_t> excluded) {
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (!excluded.contains(i)) {
      return i;
    }
  }
  throw std::logic_error("no other node");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_cluster_fixture)

BOOST_AUTO_TEST_CASE(cluster_has_three_masters_three_replicas_and_routes_by_slot) {
  redis_cluster cluster;

  BOOST_TEST(cluster.size() == 6U);
  BOOST_TEST(cluster.masters().size() == 3U);
  BOOST_TEST(cluster.replicas().size() == 3U);
  BOOST_TEST(cluster.seed_urls().size() == 6U);
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    const auto info = cluster.node(i).cli("CLUSTER", "INFO");
    BOOST_TEST(contains(info, "cluster_state:ok"), "node " << i << ": " << info);
    BOOST_TEST(contains(info, "cluster_slots_assigned:16384"));
    BOOST_TEST(cluster.seed_urls()[i] ==
               "redis://127.0.0.1:" + std::to_string(cluster.node(i).port()));
  }
  // Every replica follows a master; the masters together serve all 16384 slots.
  const auto nodes = cluster.nodes();
  int served = 0;
  std::set<std::string> master_ids;
  for (const auto& node : nodes) {
    if (node.role == redis_role::master) {
      master_ids.insert(node.id);
      for (const auto& [first, last] : node.slots) {
        served += last - first + 1;
      }
    }
  }
  BOOST_TEST(served == redis_cluster::slot_count);
  for (const auto& node : nodes) {
    if (node.role == redis_role::replica) {
      BOOST_TEST(master_ids.contains(node.master_id));
    }
  }

  // Key "corvo" hashes to slot 13292 (CRC16-XMODEM mod 16384).
  BOOST_TEST(cluster.key_slot("corvo") == 13292);
  const auto owner = cluster.node_for_slot(13292);
  BOOST_TEST(cluster.node(owner).cli("CLUSTER", "COUNTKEYSINSLOT", "13292") == "0");

  const auto writer = other_than(cluster, {owner});
  BOOST_TEST(cluster.node(writer).cli("-c", "SET", "corvo", "routed") == "OK");
  const auto reader = other_than(cluster, {owner, writer});
  BOOST_TEST(cluster.node(reader).cli("-c", "GET", "corvo") == "routed");
  BOOST_TEST(cluster.node(owner).cli("GET", "corvo") == "routed");

  // Without -c a master that does not own the slot answers MOVED to the owner.
  const auto masters = cluster.masters();
  const auto stranger =
      *std::find_if(masters.begin(), masters.end(), [owner](std::size_t i) { return i != owner; });
  BOOST_TEST(cluster.node(stranger).cli("GET", "corvo") ==
             "MOVED 13292 127.0.0.1:" + std::to_string(cluster.node(owner).port()));
}

BOOST_AUTO_TEST_CASE(killed_master_is_replaced_by_its_replica) {
  redis_cluster cluster;
  const int slot = cluster.key_slot("corvo");
  const auto master = cluster.node_for_slot(slot);
  std::set<std::uint16_t> replica_ports;
  for (const auto& node : cluster.nodes()) {
    if (node.master_id == cluster.node_id(master)) {
      replica_ports.insert(node.port);
    }
  }
  BOOST_TEST_REQUIRE(replica_ports.size() == 1U);
  BOOST_TEST(cluster.node(master).cli("SET", "corvo", "survives") == "OK");
  BOOST_TEST(cluster.node(master).cli("WAIT", "1", "10000") == "1");  // replica has it
  const auto killed_pid = cluster.node(master).pid();

  cluster.kill_node(master);

  BOOST_TEST(!cluster.node(master).running());
  BOOST_TEST(!corvo::test::process_exists(killed_pid));
  const auto ping = cluster.node(master).cli_result({"PING"});
  BOOST_TEST(ping.exit_code != 0);
  BOOST_TEST(contains(ping.err, "Connection refused"));

  const auto promoted_port = cluster.wait_for_failover(master);

  BOOST_TEST(replica_ports.contains(promoted_port));
  const auto promoted = cluster.node_for_slot(slot);
  BOOST_TEST(cluster.node(promoted).port() == promoted_port);
  BOOST_TEST(cluster.node(promoted).cli("ROLE").rfind("master", 0) == 0U);
  BOOST_TEST(contains(cluster.node(promoted).cli("CLUSTER", "INFO"), "cluster_state:ok"));
  BOOST_TEST(cluster.masters().size() == 3U);  // two old masters and the promoted replica
  const auto reader = other_than(cluster, {master, promoted});
  BOOST_TEST(cluster.node(reader).cli("-c", "GET", "corvo") == "survives");

  // The old master comes back as a replica of the node that replaced it.
  cluster.restart_node(master);
  cluster.wait_for_state_ok();
  BOOST_TEST(cluster.node(master).cli("ROLE").rfind("slave", 0) == 0U);
  BOOST_TEST(cluster.replicas().size() == 3U);
  BOOST_TEST(cluster.node(master).cli("-c", "GET", "corvo") == "survives");
}

BOOST_AUTO_TEST_SUITE_END()
