// Key slots: CRC16/XMODEM test vectors and the hash-tag rules of Redis Cluster; and the
// slot a request goes to (the keys of each command, CROSSSLOT detection).
#include <boost/test/unit_test.hpp>
#include <corvo/redis/cluster/routing.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/request.hpp>
#include <string>
#include <vector>

namespace redis = corvo::redis;

namespace {

std::vector<std::string> keys_of(const redis::request& req) {
  redis::parsed_request parsed;
  BOOST_REQUIRE(redis::split_commands(req.payload(), parsed));
  std::vector<std::string_view> keys;
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    redis::command_keys(parsed.name(i), parsed.args(i), keys);
  }
  return {keys.begin(), keys.end()};
}

template <class... Args>
std::vector<std::string> keys_of(std::string_view command, const Args&... args) {
  redis::request req;
  req.push(command, args...);
  return keys_of(req);
}

redis::request_route route_of(const redis::request& req) {
  redis::parsed_request parsed;
  BOOST_REQUIRE(redis::split_commands(req.payload(), parsed));
  return redis::route_request(parsed);
}

using strings = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_slot)

BOOST_AUTO_TEST_CASE(crc16_xmodem_test_vectors) {
  BOOST_TEST(redis::crc16("123456789") == 0x31C3);  // the XMODEM check value
  BOOST_TEST(redis::crc16("") == 0x0000);
  BOOST_TEST(redis::crc16("A") == 0x58E5);
  // Binary bytes are hashed as they are.
  const std::string binary("\x00\xff\x80", 3);
  BOOST_TEST(redis::crc16(binary) == 0x9277);
  static_assert(redis::crc16("123456789") == 0x31C3, "usable at compile time");
}

BOOST_AUTO_TEST_CASE(slots_match_what_redis_cluster_keyslot_answers) {
  // Values from CLUSTER KEYSLOT on Redis 7.
  BOOST_TEST(redis::key_slot("corvo") == 13292);
  BOOST_TEST(redis::key_slot("foo") == 12182);
  BOOST_TEST(redis::key_slot("bar") == 5061);
  BOOST_TEST(redis::key_slot("123456789") == 12739);
  BOOST_TEST(redis::key_slot("") == 0);
  for (int i = 0; i < 1000; ++i) {
    BOOST_TEST(redis::key_slot("key:" + std::to_string(i)) < redis::slot_count);
  }
}

BOOST_AUTO_TEST_CASE(hash_tags) {
  // The tag is hashed instead of the key.
  BOOST_TEST(redis::hash_tag("{user1000}.following") == "user1000");
  BOOST_TEST(redis::key_slot("{user1000}.following") == redis::key_slot("{user1000}.followers"));
  BOOST_TEST(redis::key_slot("{user1000}.following") == redis::key_slot("user1000"));
  // An empty tag does not count: the whole key is hashed.
  BOOST_TEST(redis::hash_tag("foo{}{bar}") == "foo{}{bar}");
  BOOST_TEST(redis::key_slot("foo{}{bar}") == redis::crc16("foo{}{bar}") % 16384);
  // From the first '{' to the first '}' after it.
  BOOST_TEST(redis::hash_tag("foo{{bar}}zap") == "{bar");
  BOOST_TEST(redis::key_slot("foo{{bar}}zap") == redis::key_slot("{bar"));
  // Only the first tag.
  BOOST_TEST(redis::hash_tag("foo{bar}{zap}") == "bar");
  BOOST_TEST(redis::key_slot("foo{bar}{zap}") == redis::key_slot("bar"));
  // No closing brace, or nothing after '{': the whole key.
  BOOST_TEST(redis::hash_tag("foo{bar") == "foo{bar");
  BOOST_TEST(redis::hash_tag("foo}bar{") == "foo}bar{");
  BOOST_TEST(redis::hash_tag("{}") == "{}");
  BOOST_TEST(redis::hash_tag("}{a}") == "a");
}

BOOST_AUTO_TEST_CASE(requests_split_into_commands) {
  redis::request req;
  req.push("SET", "k", "v");
  req.push("PING");
  req.push("MSET", std::string("a\r\nb", 4), "");  // binary-safe, empty argument
  redis::parsed_request parsed;
  BOOST_REQUIRE(redis::split_commands(req.payload(), parsed));
  BOOST_REQUIRE(parsed.size() == 3U);
  BOOST_TEST(parsed.name(0) == "SET");
  BOOST_TEST(parsed.args(0).size() == 2U);
  BOOST_TEST(parsed.args(1).empty());
  BOOST_TEST(parsed.args(2)[0] == std::string_view("a\r\nb", 4));
  BOOST_TEST(parsed.args(2)[1].empty());
  BOOST_TEST(parsed.commands[0].bytes.size() + parsed.commands[1].bytes.size() +
                 parsed.commands[2].bytes.size() ==
             req.payload().size());
  for (const char* bad : {"*1\r\n$3\r\nGE", "*x\r\n", "+OK\r\n", "*1\r\n$3\r\nGETXX", "*0\r\n"}) {
    BOOST_TEST(!redis::split_commands(bad, parsed), bad);
  }
}

BOOST_AUTO_TEST_CASE(key_positions_by_command) {
  BOOST_TEST(keys_of("GET", "k") == strings{"k"});
  BOOST_TEST(keys_of("hset", "h", "f", "v") == strings{"h"});  // any case
  BOOST_TEST(keys_of("PING").empty());
  BOOST_TEST(keys_of("INFO", "server").empty());
  BOOST_TEST(keys_of("CLUSTER", "SLOTS").empty());
  BOOST_TEST(keys_of("PUBLISH", "channel", "msg").empty());
  BOOST_TEST(keys_of("DEL", "a", "b", "c") == (strings{"a", "b", "c"}));
  BOOST_TEST(keys_of("MGET", "a", "b") == (strings{"a", "b"}));
  BOOST_TEST(keys_of("MSET", "a", "1", "b", "2") == (strings{"a", "b"}));
  BOOST_TEST(keys_of("BLPOP", "l1", "l2", "0") == (strings{"l1", "l2"}));
  BOOST_TEST(keys_of("LMOVE", "src", "dst", "LEFT", "RIGHT") == (strings{"src", "dst"}));
  BOOST_TEST(keys_of("EVAL", "return 1", "2", "k1", "k2", "arg") == (strings{"k1", "k2"}));
  BOOST_TEST(keys_of("EVALSHA", "abc", "0", "notakey").empty());
  BOOST_TEST(keys_of("FCALL", "fn", "1", "k", "a") == strings{"k"});
  BOOST_TEST(keys_of("ZUNIONSTORE", "dst", "2", "z1", "z2", "WEIGHTS", "1", "2") ==
             (strings{"dst", "z1", "z2"}));
  BOOST_TEST(keys_of("ZUNION", "2", "z1", "z2", "WITHSCORES") == (strings{"z1", "z2"}));
  BOOST_TEST(keys_of("LMPOP", "2", "l1", "l2", "LEFT") == (strings{"l1", "l2"}));
  BOOST_TEST(keys_of("BLMPOP", "0", "1", "l1", "LEFT") == strings{"l1"});
  BOOST_TEST(keys_of("XREAD", "COUNT", "10", "BLOCK", "0", "STREAMS", "s1", "s2", "0", "$") ==
             (strings{"s1", "s2"}));
  BOOST_TEST(keys_of("XREADGROUP", "GROUP", "streams", "c1", "STREAMS", "s", ">") == strings{"s"});
  BOOST_TEST(keys_of("XADD", "s", "*", "f", "v") == strings{"s"});
  BOOST_TEST(keys_of("XGROUP", "CREATE", "s", "g", "$") == strings{"s"});
  BOOST_TEST(keys_of("XINFO", "HELP").empty());
  BOOST_TEST(keys_of("OBJECT", "ENCODING", "k") == strings{"k"});
  BOOST_TEST(keys_of("MEMORY", "USAGE", "k") == strings{"k"});
  BOOST_TEST(keys_of("BITOP", "AND", "dst", "a", "b") == (strings{"dst", "a", "b"}));
  BOOST_TEST(keys_of("SORT", "k", "LIMIT", "0", "5", "STORE", "out") == (strings{"k", "out"}));
  BOOST_TEST(keys_of("MIGRATE", "h", "6379", "", "0", "5000", "KEYS", "a", "b") ==
             (strings{"a", "b"}));
  BOOST_TEST(keys_of("MIGRATE", "h", "6379", "k", "0", "5000") == strings{"k"});
  BOOST_TEST(keys_of("SSUBSCRIBE", "c1", "c2") == (strings{"c1", "c2"}));
  BOOST_TEST(keys_of("SPUBLISH", "c1", "hello") == strings{"c1"});
  BOOST_TEST(keys_of("NOSUCHCOMMAND", "x") == strings{"x"});  // unknown: first argument
}

BOOST_AUTO_TEST_CASE(a_request_routes_by_the_slot_all_its_keys_share) {
  redis::request same;
  same.push("SET", "{user:1}:name", "ada");
  same.push("INCR", "{user:1}:visits");
  same.push("PING");
  const auto route = route_of(same);
  BOOST_TEST((route.type == redis::request_route::kind::slot));
  BOOST_TEST(route.slot == redis::key_slot("user:1"));

  redis::request keyless;
  keyless.push("PING");
  keyless.push("INFO");
  BOOST_TEST((route_of(keyless).type == redis::request_route::kind::any_node));

  redis::request crossing;
  crossing.push("MSET", "foo", "1", "bar", "2");
  const auto cross = route_of(crossing);
  BOOST_TEST((cross.type == redis::request_route::kind::cross_slot));
  // The message names the keys and their slots.
  BOOST_TEST(cross.message.find("'foo' (slot 12182)") != std::string::npos, cross.message);
  BOOST_TEST(cross.message.find("'bar' (slot 5061)") != std::string::npos, cross.message);

  redis::request across_commands;
  across_commands.push("GET", "foo");
  across_commands.push("GET", "bar");
  BOOST_TEST((route_of(across_commands).type == redis::request_route::kind::cross_slot));

  redis::request script;
  script.push("EVALSHA", "0123", 2, "{q}:due", "{q}:inflight", "100");
  BOOST_TEST(route_of(script).slot == redis::key_slot("q"));

  redis::request load;
  load.push("SCRIPT", "LOAD", "return 1");
  BOOST_TEST((route_of(load).type == redis::request_route::kind::broadcast));

  redis::request subscribe;
  subscribe.push("SSUBSCRIBE", "news");
  BOOST_TEST((route_of(subscribe).type == redis::request_route::kind::shard_subscription));
  subscribe.push("GET", "k");
  BOOST_TEST((route_of(subscribe).type == redis::request_route::kind::mixed_subscription));

  BOOST_TEST(*redis::route_hint::for_key("{q}:x").slot == redis::key_slot("q"));
}

BOOST_AUTO_TEST_SUITE_END()
