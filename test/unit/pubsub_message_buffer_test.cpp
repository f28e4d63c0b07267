// The subscriber's bounded buffer and overflow policies, the decoding of message pushes,
// typed payloads and the subscriber's configuration keys: plain code, no server.
#include <boost/json/value_from.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/pubsub/message_buffer.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/resp3/node.hpp>
#include <map>

namespace pubsub = corvo::pubsub;
namespace resp3 = corvo::redis::resp3;
using pubsub::message_buffer;
using pubsub::overflow_policy;

namespace {

pubsub::message numbered(int i, std::size_t payload_size = 1) {
  pubsub::message m;
  m.channel = "c";
  m.payload = std::to_string(i) + std::string(payload_size - 1, 'x');
  m.received_at = std::chrono::steady_clock::time_point(std::chrono::seconds(i));
  return m;
}

std::vector<std::string> drain(message_buffer& buffer) {
  std::vector<std::string> out;
  while (auto m = buffer.pop()) {
    out.push_back(m->payload.substr(0, m->payload.find('x')));
  }
  return out;
}

resp3::node leaf(std::string value) {
  resp3::node n;
  n.data_type = resp3::type::bulk_string;
  n.aggregate_size = 1;
  n.depth = 1;
  n.value = std::move(value);
  return n;
}

corvo::redis::generic_response push_of(std::vector<std::string> elements) {
  corvo::redis::generic_response out;
  resp3::node root;
  root.data_type = resp3::type::push;
  root.aggregate_size = elements.size();
  root.depth = 0;
  out.push_back(root);
  for (auto& e : elements) {
    out.push_back(leaf(std::move(e)));
  }
  return out;
}

struct order_event {
  int id = 0;
  std::string state;
};

order_event tag_invoke(boost::json::value_to_tag<order_event>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return {static_cast<int>(o.at("id").as_int64()), std::string(o.at("state").as_string())};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pubsub_message_buffer)

BOOST_AUTO_TEST_CASE(drop_oldest_keeps_the_newest_and_counts_each_drop) {
  message_buffer buffer({.max_messages = 3}, overflow_policy::drop_oldest);
  for (int i = 0; i < 10; ++i) {
    BOOST_TEST((buffer.push(numbered(i)) == message_buffer::push_result::stored));
  }
  BOOST_TEST(buffer.size() == 3u);
  BOOST_TEST(buffer.dropped() == 7u);
  BOOST_TEST(buffer.oldest_received_at()->time_since_epoch() == std::chrono::seconds(7));
  BOOST_TEST(drain(buffer) == (std::vector<std::string>{"7", "8", "9"}));
  BOOST_TEST(buffer.bytes() == 0u);
  BOOST_TEST(!buffer.oldest_received_at());
}

BOOST_AUTO_TEST_CASE(drop_newest_keeps_the_oldest_and_counts_each_drop) {
  message_buffer buffer({.max_messages = 3}, overflow_policy::drop_newest);
  for (int i = 0; i < 10; ++i) {
    const auto result = buffer.push(numbered(i));
    BOOST_TEST((result == (i < 3 ? message_buffer::push_result::stored
                                 : message_buffer::push_result::dropped)));
  }
  BOOST_TEST(buffer.dropped() == 7u);
  BOOST_TEST(drain(buffer) == (std::vector<std::string>{"0", "1", "2"}));
}

BOOST_AUTO_TEST_CASE(disconnect_reports_overflow_and_keeps_the_buffer) {
  message_buffer buffer({.max_messages = 2}, overflow_policy::disconnect);
  BOOST_TEST((buffer.push(numbered(0)) == message_buffer::push_result::stored));
  BOOST_TEST((buffer.push(numbered(1)) == message_buffer::push_result::stored));
  BOOST_TEST((buffer.push(numbered(2)) == message_buffer::push_result::overflow));
  BOOST_TEST(buffer.dropped() == 0u);
  BOOST_TEST(drain(buffer) == (std::vector<std::string>{"0", "1"}));
}

BOOST_AUTO_TEST_CASE(the_byte_bound_drops_as_many_old_messages_as_needed) {
  // channel "c" (1 byte) + payload: 10, 10, 10 bytes fit in 30; a 20-byte one drops two.
  message_buffer buffer({.max_messages = 100, .max_bytes = 30}, overflow_policy::drop_oldest);
  for (int i = 0; i < 3; ++i) {
    buffer.push(numbered(i, 9));
  }
  BOOST_TEST(buffer.bytes() == 30u);
  buffer.push(numbered(3, 19));
  BOOST_TEST(buffer.dropped() == 2u);
  BOOST_TEST(buffer.bytes() == 30u);
  // Larger than the whole bound: never fits, dropped even under drop_oldest.
  BOOST_TEST((buffer.push(numbered(4, 40)) == message_buffer::push_result::dropped));
  BOOST_TEST(buffer.dropped() == 3u);
  BOOST_TEST(drain(buffer) == (std::vector<std::string>{"2", "3"}));
}

BOOST_AUTO_TEST_CASE(policy_names_parse_and_bad_ones_are_rejected) {
  BOOST_TEST((pubsub::parse_overflow_policy("drop_newest") == overflow_policy::drop_newest));
  BOOST_TEST((pubsub::parse_overflow_policy("disconnect") == overflow_policy::disconnect));
  BOOST_CHECK_THROW(pubsub::parse_overflow_policy("drop"), std::invalid_argument);
  BOOST_TEST(std::string(pubsub::to_string(overflow_policy::drop_oldest)) == "drop_oldest");
}

BOOST_AUTO_TEST_CASE(message_pushes_decode_and_other_pushes_do_not) {
  auto m = pubsub::message_from_push(push_of({"message", "news", "hi"}));
  BOOST_REQUIRE(m);
  BOOST_TEST((m->kind == pubsub::message_kind::channel));
  BOOST_TEST(m->channel == "news");
  BOOST_TEST(m->payload == "hi");
  auto p = pubsub::message_from_push(push_of({"pmessage", "n*", "news", "hi"}));
  BOOST_REQUIRE(p);
  BOOST_TEST((p->kind == pubsub::message_kind::pattern));
  BOOST_TEST(p->pattern == "n*");
  BOOST_TEST(p->channel == "news");
  auto s = pubsub::message_from_push(push_of({"smessage", "{a}", "x"}));
  BOOST_REQUIRE(s);
  BOOST_TEST((s->kind == pubsub::message_kind::shard));
  BOOST_TEST(!pubsub::message_from_push(push_of({"subscribe", "news", "1"})));
  BOOST_TEST(!pubsub::message_from_push(push_of({"message", "news"})));  // too short
  BOOST_TEST(!pubsub::message_from_push(push_of({"pmessage", "n*", "news"})));
  BOOST_TEST(!pubsub::message_from_push({}));
}

// A traceparent put in front by the publisher comes out in message::traceparent, the payload
// exactly as published; a payload that only starts like one is left alone.
BOOST_AUTO_TEST_CASE(a_traceparent_in_front_of_the_payload_is_taken_out) {
  const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const std::string traced = pubsub::with_traceparent(tp, R"({"id":7})");
  BOOST_TEST(traced == "\x1etraceparent=" + tp + "\n" + R"({"id":7})");
  BOOST_TEST(pubsub::with_traceparent("", "plain") == "plain");
  BOOST_CHECK_EXCEPTION(pubsub::with_traceparent("00-not-a-trace", "x"), std::invalid_argument,
                        [](const std::invalid_argument& e) {
                          return std::string(e.what()).find("invalid traceparent") !=
                                 std::string::npos;
                        });
  for (const char* kind : {"message", "smessage"}) {
    auto m = pubsub::message_from_push(push_of({kind, "orders", traced}));
    BOOST_TEST_REQUIRE(m.has_value());
    BOOST_TEST(m->traceparent == tp);
    BOOST_TEST(m->payload == R"({"id":7})");
    BOOST_TEST(m->as<boost::json::value>().at("id").as_int64() == 7);
  }
  auto p = pubsub::message_from_push(push_of({"pmessage", "o*", "orders", traced}));
  BOOST_TEST_REQUIRE(p.has_value());
  BOOST_TEST(p->traceparent == tp);
  BOOST_TEST(p->payload == R"({"id":7})");
  // Look-alikes stay payload: an invalid trace, no newline after it, too short.
  const std::string bad_tp = "\x1etraceparent=" + std::string(55, 'x') + "\nrest";
  const std::string no_newline = "\x1etraceparent=" + tp + "rest";
  for (const std::string& odd : {bad_tp, no_newline, std::string("\x1etraceparent=")}) {
    auto m = pubsub::message_from_push(push_of({"message", "orders", odd}));
    BOOST_TEST_REQUIRE(m.has_value());
    BOOST_TEST(m->traceparent.empty());
    BOOST_TEST(m->payload == odd);
  }
}

BOOST_AUTO_TEST_CASE(typed_payloads_decode_and_bad_ones_name_the_channel) {
  pubsub::message m;
  m.channel = "orders";
  m.payload = R"({"id":7,"state":"paid"})";
  const auto e = m.as<order_event>();
  BOOST_TEST(e.id == 7);
  BOOST_TEST(e.state == "paid");
  m.payload = "not json";
  try {
    (void)m.json();
    BOOST_FAIL("no decode_error");
  } catch (const pubsub::decode_error& err) {
    BOOST_TEST(err.channel() == "orders");
    BOOST_TEST(std::string(err.what()).find("not JSON") != std::string::npos);
  }
  m.payload = R"({"id":"seven"})";  // JSON, but not an order_event
  BOOST_CHECK_THROW(m.as<order_event>(), pubsub::decode_error);
}

BOOST_AUTO_TEST_CASE(options_come_from_the_configuration_and_unknown_keys_are_rejected) {
  auto cfg = corvo::config::from_string(
      R"({"pubsub": {"buffer": {"max_messages": 50, "max_bytes": 4096},
                     "overflow": "drop_newest", "topology_check_interval": "1s"}})");
  const auto options = pubsub::subscriber_options::from(cfg);
  BOOST_TEST(options.buffer.max_messages == 50u);
  BOOST_TEST(options.buffer.max_bytes == 4096u);
  BOOST_TEST((options.overflow == overflow_policy::drop_newest));
  BOOST_TEST(options.topology_check_interval.count() == 1000);

  const auto defaults = pubsub::subscriber_options::from(corvo::config{});
  BOOST_TEST(defaults.buffer.max_messages == 10'000u);
  BOOST_TEST((defaults.overflow == overflow_policy::drop_oldest));

  const auto key_of_error = [](const std::string& json) {
    try {
      (void)pubsub::subscriber_options::from(corvo::config::from_string(json));
    } catch (const corvo::config_error& e) {
      return e.key();
    }
    return std::string("no error");
  };
  BOOST_TEST(key_of_error(R"({"pubsub": {"overflow": "drop"}})") == "pubsub.overflow");
  BOOST_TEST(key_of_error(R"({"pubsub": {"buffer": {"max_mesages": 5}}})") ==
             "pubsub.buffer.max_mesages");
  BOOST_TEST(key_of_error(R"({"pubsub": {"buffer": {"max_messages": 0}}})") ==
             "pubsub.buffer.max_messages");
  BOOST_TEST(key_of_error(R"({"pubsub": {"buffer": {"max_messages": "many"}}})") ==
             "pubsub.buffer.max_messages");
}

BOOST_AUTO_TEST_SUITE_END()
