// Topic health from librdkafka's statistics JSON: the Kafka sink pauses claiming when a
// partition leader is unreachable.
#include <corvo/kafka/statistics.hpp>

#include <boost/test/unit_test.hpp>

#include <string>

using corvo::kafka::health_of;

namespace {

// Trimmed from a real librdkafka 2.0.2 statistics document (3 mock brokers, topic "tasks"
// with 3 partitions led by brokers 1, 2 and 3, plus the unassigned partition -1).
std::string statistics(const std::string& state1, const std::string& state2,
                       const std::string& state3) {
  return R"({"name":"rdkafka#producer-1","type":"producer","ts":1,
    "brokers":{
      "127.0.0.1:40001/1":{"name":"127.0.0.1:40001/1","nodeid":1,"source":"learned","state":")" +
         state1 + R"("},
      "127.0.0.1:40002/2":{"name":"127.0.0.1:40002/2","nodeid":2,"source":"learned","state":")" +
         state2 + R"("},
      "127.0.0.1:40003/3":{"name":"127.0.0.1:40003/3","nodeid":3,"source":"learned","state":")" +
         state3 + R"("},
      "127.0.0.1:40001/bootstrap":{"name":"127.0.0.1:40001/bootstrap","nodeid":-1,
         "source":"configured","state":"UP"}},
    "topics":{"tasks":{"topic":"tasks","partitions":{
      "0":{"partition":0,"broker":1,"leader":1},
      "1":{"partition":1,"broker":2,"leader":2},
      "2":{"partition":2,"broker":3,"leader":3},
      "-1":{"partition":-1,"broker":-1,"leader":-1}}}}})";
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_leader_up_is_writable) {
  const auto h = health_of(statistics("UP", "UP", "UPDATE"), "tasks");
  BOOST_REQUIRE(h.has_value());
  BOOST_TEST(h->partitions == 3u);
  BOOST_TEST(h->leaders_up == 3u);
  BOOST_TEST(h->writable());
}

BOOST_AUTO_TEST_CASE(one_leader_down_is_not_writable) {
  for (const char* state : {"DOWN", "INIT", "TRY_CONNECT", "CONNECT", "APIVERSION_QUERY"}) {
    const auto h = health_of(statistics("UP", state, "UP"), "tasks");
    BOOST_REQUIRE(h.has_value());
    BOOST_TEST(h->leaders_up == 2u);
    BOOST_TEST(!h->writable());
  }
  const auto all_down = health_of(statistics("DOWN", "DOWN", "DOWN"), "tasks");
  BOOST_REQUIRE(all_down.has_value());
  BOOST_TEST(all_down->leaders_up == 0u);
}

BOOST_AUTO_TEST_CASE(unknown_topic_or_garbage_gives_no_opinion) {
  BOOST_TEST(!health_of(statistics("UP", "UP", "UP"), "other").has_value());
  BOOST_TEST(!health_of("not json", "tasks").has_value());
  BOOST_TEST(!health_of(R"({"brokers":{}})", "tasks").has_value());
  BOOST_TEST(!health_of(R"({"brokers":{},"topics":{"tasks":{"partitions":{
      "-1":{"partition":-1,"leader":-1}}}}})",
                        "tasks")
                  .has_value());
}
