// The cluster slot map, built from CLUSTER SLOTS / CLUSTER SHARDS replies recorded from a
// Redis 7.0 cluster (3 masters, 3 replicas), patched by MOVED; and the parsing of the
// cluster error replies the client reacts to.
#include <boost/test/unit_test.hpp>
#include <corvo/redis/adapter.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/cluster/slot_map.hpp>
#include <string>

namespace redis = corvo::redis;
using boost::system::error_code;

namespace {

redis::generic_response nodes_of(std::string_view wire) {
  redis::generic_response out;
  error_code ec;
  redis::adapt(wire, out, ec);
  BOOST_REQUIRE(!ec);
  return out;
}

// CLUSTER SLOTS over RESP3 (HELLO 3): [first, last, master, replica], each node
// [ip, port, id, metadata map].
const std::string cluster_slots =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17001\r\n$40\r\nac0e7f42e08aaf15223dee87b6f5ec5e656a3f50\r\n%0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17005\r\n$40\r\ncf35953a4a0b6e1a4026a0b273bfdd30b7d34235\r\n%0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17002\r\n$40\r\nfde94f73bc76693fd804d16d82acdc525b5fe2b3\r\n%0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17006\r\n$40\r\n2d64fec1ab363e10cccd508121235962f990acc8\r\n%0\r\n"
    "*4\r\n:10923\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17003\r\n$40\r\nafd72d0824822f233be7a37b5cd05ed13cec5079\r\n%0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:17004\r\n$40\r\nef824f2ef85b8d7145b99e1a374e6190969d12cd\r\n%0\r\n";

std::string shard_node(const std::string& id, const std::string& port, const std::string& role,
                       const std::string& health) {
  return "%7\r\n$2\r\nid\r\n$40\r\n" + id + "\r\n$4\r\nport\r\n:" + port +
         "\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$" +
         std::to_string(role.size()) + "\r\n" + role +
         "\r\n$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$" +
         std::to_string(health.size()) + "\r\n" + health + "\r\n";
}

std::string shard(const std::string& first, const std::string& last, const std::string& nodes) {
  return "%2\r\n$5\r\nslots\r\n*2\r\n:" + first + "\r\n:" + last + "\r\n$5\r\nnodes\r\n*2\r\n" +
         nodes;
}

// CLUSTER SHARDS as recorded right after creation: the replicas still "loading".
const std::string cluster_shards =
    "*3\r\n" +
    shard(
        "0", "5460",
        shard_node("ac0e7f42e08aaf15223dee87b6f5ec5e656a3f50", "17001", "master", "online") +
            shard_node("cf35953a4a0b6e1a4026a0b273bfdd30b7d34235", "17005", "replica", "loading")) +
    shard(
        "10923", "16383",
        shard_node("afd72d0824822f233be7a37b5cd05ed13cec5079", "17003", "master", "online") +
            shard_node("ef824f2ef85b8d7145b99e1a374e6190969d12cd", "17004", "replica", "online")) +
    shard("5461", "10922",
          shard_node("fde94f73bc76693fd804d16d82acdc525b5fe2b3", "17002", "master", "online") +
              shard_node("2d64fec1ab363e10cccd508121235962f990acc8", "17006", "replica", "online"));

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_slot_map)

BOOST_AUTO_TEST_CASE(built_from_cluster_slots) {
  error_code ec;
  const auto map = redis::slot_map::from_cluster_slots(nodes_of(cluster_slots), "10.0.0.1", ec);
  BOOST_REQUIRE(!ec);
  BOOST_TEST(map.covered_slots() == 16384U);
  BOOST_REQUIRE(map.shards().size() == 3U);
  BOOST_TEST(map.master_of(0)->address() == "127.0.0.1:17001");
  BOOST_TEST(map.master_of(5460)->address() == "127.0.0.1:17001");
  BOOST_TEST(map.master_of(5461)->address() == "127.0.0.1:17002");
  BOOST_TEST(map.master_of(10923)->address() == "127.0.0.1:17003");
  BOOST_TEST(map.master_of(16383)->id == "afd72d0824822f233be7a37b5cd05ed13cec5079");
  BOOST_TEST(map.master_of(redis::key_slot("foo"))->port == "17003");  // slot 12182
  const auto& first = map.shards()[map.shard_of(0)];
  BOOST_REQUIRE(first.replicas.size() == 1U);
  BOOST_TEST(first.replicas[0].address() == "127.0.0.1:17005");
  BOOST_TEST(map.is_master("127.0.0.1:17002"));
  BOOST_TEST(!map.is_master("127.0.0.1:17005"));
  BOOST_TEST(map.all_nodes().size() == 6U);
  BOOST_TEST(map.all_nodes()[0].address() == "127.0.0.1:17001");  // masters first
}

BOOST_AUTO_TEST_CASE(built_from_cluster_shards) {
  error_code ec;
  const auto map = redis::slot_map::from_cluster_shards(nodes_of(cluster_shards), "x", ec);
  BOOST_REQUIRE(!ec);
  BOOST_TEST(map.covered_slots() == 16384U);
  BOOST_TEST(map.master_of(100)->address() == "127.0.0.1:17001");
  BOOST_TEST(map.master_of(7000)->address() == "127.0.0.1:17002");
  BOOST_TEST(map.master_of(16000)->address() == "127.0.0.1:17003");
  // A replica that is not online yet is not listed.
  BOOST_TEST(map.shards()[map.shard_of(100)].replicas.empty());
  BOOST_TEST(map.shards()[map.shard_of(16000)].replicas.size() == 1U);
  // Same routing as the CLUSTER SLOTS view of the same cluster.
  const auto by_slots = redis::slot_map::from_cluster_slots(nodes_of(cluster_slots), "x", ec);
  BOOST_TEST(map.same_routing(by_slots));
}

BOOST_AUTO_TEST_CASE(unknown_endpoint_takes_the_replying_host) {
  // "?" (or empty) is what a node without a known address announces.
  const std::string reply = "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7000\r\n$3\r\nabc\r\n";
  error_code ec;
  const auto map = redis::slot_map::from_cluster_slots(nodes_of(reply), "10.1.2.3", ec);
  BOOST_REQUIRE(!ec);
  BOOST_TEST(map.master_of(42)->address() == "10.1.2.3:7000");
}

BOOST_AUTO_TEST_CASE(partial_coverage_and_malformed_replies) {
  error_code ec;
  const std::string half = "*1\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n";
  const auto map = redis::slot_map::from_cluster_slots(nodes_of(half), "", ec);
  BOOST_REQUIRE(!ec);
  BOOST_TEST(map.covered_slots() == 8192U);
  BOOST_TEST(map.master_of(8192) == nullptr);

  const char* bad[] = {
      "-ERR This instance has cluster support disabled\r\n",
      ":1\r\n",
      "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n",   // slot out of range
      "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n",       // last < first
      "*1\r\n*2\r\n:0\r\n:5\r\n",                                         // no master
      "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n",  // port not a number
      "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$9\r\n127.0.0.1\r\n:70000\r\n",      // port out of range
  };
  for (const char* wire : bad) {
    error_code e;
    const auto m = redis::slot_map::from_cluster_slots(nodes_of(wire), "", e);
    BOOST_TEST(e == error_code(redis::error::type_mismatch), wire);
    BOOST_TEST(m.empty());
  }
  error_code e;
  redis::slot_map::from_cluster_shards(nodes_of("*1\r\n%1\r\n$5\r\nslots\r\n*1\r\n:0\r\n"), "", e);
  BOOST_TEST(e == error_code(redis::error::type_mismatch));
}

BOOST_AUTO_TEST_CASE(moved_patches_one_slot) {
  error_code ec;
  auto map = redis::slot_map::from_cluster_slots(nodes_of(cluster_slots), "", ec);
  // To a known master.
  BOOST_TEST(map.move_slot(3999, redis::cluster_node{"127.0.0.1", "17002", {}}));
  BOOST_TEST(map.master_of(3999)->address() == "127.0.0.1:17002");
  BOOST_TEST(map.master_of(3998)->address() == "127.0.0.1:17001");
  BOOST_TEST(!map.move_slot(3999, redis::cluster_node{"127.0.0.1", "17002", {}}));  // no change
  BOOST_TEST(map.shards().size() == 3U);
  // To a node not seen before: a new shard.
  BOOST_TEST(map.move_slot(0, redis::cluster_node{"127.0.0.1", "17009", {}}));
  BOOST_TEST(map.shards().size() == 4U);
  BOOST_TEST(map.is_master("127.0.0.1:17009"));
  BOOST_TEST(map.covered_slots() == 16384U);
  const auto fresh = redis::slot_map::from_cluster_slots(nodes_of(cluster_slots), "", ec);
  BOOST_TEST(!map.same_routing(fresh));
}

BOOST_AUTO_TEST_CASE(redirections_are_parsed) {
  const auto moved = redis::parse_redirection("MOVED 3999 127.0.0.1:6381");
  BOOST_REQUIRE(moved.has_value());
  BOOST_TEST((moved->type == redis::redirection::kind::moved));
  BOOST_TEST(moved->slot == 3999);
  BOOST_TEST(moved->address() == "127.0.0.1:6381");

  const auto ask = redis::parse_redirection("ASK 12182 10.0.0.5:7000");
  BOOST_REQUIRE(ask.has_value());
  BOOST_TEST((ask->type == redis::redirection::kind::ask));
  BOOST_TEST(ask->slot == 12182);
  BOOST_TEST(ask->host == "10.0.0.5");
  BOOST_TEST(ask->port == "7000");

  const auto ipv6 = redis::parse_redirection("MOVED 1 ::1:7001");
  BOOST_REQUIRE(ipv6.has_value());
  BOOST_TEST(ipv6->host == "::1");
  BOOST_TEST(ipv6->port == "7001");

  const auto no_host = redis::parse_redirection("MOVED 7 :7002");
  BOOST_REQUIRE(no_host.has_value());
  BOOST_TEST(no_host->host.empty());  // the caller uses the replying node's host

  for (const char* bad :
       {"MOVED", "MOVED 3999", "MOVED x 127.0.0.1:1", "MOVED 16384 h:1", "MOVED 1 host",
        "MOVED 1 host:", "MOVED 1 host:99999", "ASKING 1 h:1", "ERR MOVED 1 h:1", "moved 1 h:1"}) {
    BOOST_TEST(!redis::parse_redirection(bad).has_value(), bad);
  }
}

BOOST_AUTO_TEST_CASE(cluster_errors_are_classified) {
  using kind = redis::cluster_error_kind;
  BOOST_TEST((redis::classify_cluster_error("MOVED 1 h:1") == kind::moved));
  BOOST_TEST((redis::classify_cluster_error("ASK 1 h:1") == kind::ask));
  BOOST_TEST((redis::classify_cluster_error(
                  "TRYAGAIN Multiple keys request during rehashing of slot") == kind::try_again));
  BOOST_TEST((redis::classify_cluster_error("LOADING Redis is loading the dataset in memory") ==
              kind::try_again));
  BOOST_TEST(
      (redis::classify_cluster_error("CLUSTERDOWN The cluster is down") == kind::cluster_down));
  BOOST_TEST(
      (redis::classify_cluster_error("CLUSTERDOWN Hash slot not served") == kind::cluster_down));
  BOOST_TEST((redis::classify_cluster_error(
                  "READONLY You can't write against a read only replica.") == kind::not_master));
  BOOST_TEST((redis::classify_cluster_error(
                  "CROSSSLOT Keys in request don't hash to the same slot") == kind::none));
  BOOST_TEST((redis::classify_cluster_error("ERR unknown command") == kind::none));
  BOOST_TEST((redis::classify_cluster_error("ASKING") == kind::none));
  BOOST_TEST((redis::classify_cluster_error("MOVEDX 1") == kind::none));
}

BOOST_AUTO_TEST_SUITE_END()
