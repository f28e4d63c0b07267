// The queue item envelope, key layout, options and typed handlers, without a server.
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/queue/options.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/typed_handlers.hpp>

namespace queue = corvo::queue;

BOOST_AUTO_TEST_CASE(an_envelope_round_trips_and_foreign_values_are_bodies) {
  const auto value = queue::encode_envelope("p.7", 2, "a|b\nc");
  BOOST_TEST(value == "c1|p.7|2|a|b\nc");
  const auto e = queue::decode_envelope(value);
  BOOST_TEST(e.wrapped);
  BOOST_TEST(e.id == "p.7");
  BOOST_TEST(e.attempts == 2u);
  BOOST_TEST(e.body == "a|b\nc");
  // Identical bodies with different ids are different bytes (an ack removes exactly one).
  BOOST_TEST(queue::encode_envelope("p.1", 0, "x") != queue::encode_envelope("p.2", 0, "x"));
  // Not envelopes: the whole value is the body.
  for (const std::string foreign :
       {"plain", "c1|", "c1|id", "c1|id|", "c1|id|x|b", "c1|id|-1|b", "c1|id|99999999999|b"}) {
    const auto f = queue::decode_envelope(foreign);
    BOOST_TEST(!f.wrapped, foreign);
    BOOST_TEST(f.body == foreign);
    BOOST_TEST(f.id.empty());
    BOOST_TEST(f.attempts == 0u);
  }
  const auto empty_id = queue::decode_envelope("c1||3|b");
  BOOST_TEST(empty_id.wrapped);
  BOOST_TEST(empty_id.attempts == 3u);
  BOOST_CHECK_THROW(queue::encode_envelope("a|b", 0, "x"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(keys_of_a_queue_share_one_hash_tag) {
  const queue::queue_keys plain("coupons");
  BOOST_TEST(plain.queue() == "coupons");
  BOOST_TEST(plain.processing("w1") == "{coupons}:processing:w1");
  BOOST_TEST(plain.heartbeat("w1") == "{coupons}:heartbeat:w1");
  BOOST_TEST(plain.consumers() == "{coupons}:consumers");
  BOOST_TEST(plain.dead() == "{coupons}:dead");
  BOOST_TEST(plain.delayed() == "{coupons}:delayed");
  const queue::queue_keys tagged("{shop}:coupons");
  BOOST_TEST(tagged.dead() == "{shop}:coupons:dead");
  BOOST_TEST(queue::has_hash_tag("{a}b"));
  BOOST_TEST(!queue::has_hash_tag("{}b"));
  BOOST_TEST(!queue::has_hash_tag("a{b"));
  BOOST_CHECK_THROW(queue::queue_keys(""), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_dead_letter_entry_parses_and_junk_is_refused) {
  const auto d = queue::parse_dead_letter(
      R"({"reason":"boom \"x\"\nline","attempts":3,"consumer":"w1","at_ms":1764000000123})"
      "\n" +
      queue::encode_envelope("i1", 3, "body\nwith newline"));
  BOOST_TEST(d.id == "i1");
  BOOST_TEST(d.attempts == 3u);
  BOOST_TEST(d.reason == "boom \"x\"\nline");
  BOOST_TEST(d.consumer == "w1");
  BOOST_TEST(d.at_ms == 1764000000123);
  BOOST_TEST(d.body == "body\nwith newline");
  BOOST_CHECK_THROW(queue::parse_dead_letter("no newline"), std::invalid_argument);
  BOOST_CHECK_THROW(queue::parse_dead_letter("[1]\nc1|a|0|b"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(options_from_the_configuration_with_unknown_keys_refused) {
  auto cfg = corvo::config::from_string(
      R"({"coupons":{"name":"coupon-requests","max_in_flight":8,"batch":32,
          "block_timeout":"250ms","max_attempts":4,"heartbeat_ttl":"6s","reap":false}})");
  const auto o = queue::queue_options::from(cfg, "coupons");
  BOOST_TEST(o.name == "coupon-requests");
  BOOST_TEST(o.max_in_flight == 8u);
  BOOST_TEST(o.batch == 32u);
  BOOST_TEST(o.block_timeout.count() == 250);
  BOOST_TEST(o.max_attempts == 4u);
  BOOST_TEST(o.heartbeat_ttl.count() == 6000);
  BOOST_TEST(o.effective_heartbeat_interval().count() == 2000);
  BOOST_TEST(o.effective_reap_interval().count() == 3000);
  BOOST_TEST(!o.reap);
  BOOST_TEST(o.drain_timeout.count() == 10'000);    // default
  BOOST_TEST(o.retry_delay_max.count() == 60'000);  // default

  const auto refused = [](const std::string& json, const std::string& expected) {
    auto c = corvo::config::from_string(json);
    try {
      queue::queue_options::from(c, "q");
      BOOST_ERROR("accepted " << json);
    } catch (const corvo::config_error& e) {
      BOOST_TEST(std::string(e.what()).find(expected) != std::string::npos, e.what());
    }
  };
  refused(R"({"q":{"name":"a","max_atempts":3}})", "did you mean 'max_attempts'");
  refused(R"({"q":{}})", "name");
  refused(R"({"q":{"name":"a","batch":5000}})", "batch must be at most 1000");
  refused(R"({"q":{"name":"a","max_in_flight":0}})", "at least 1");
  refused(R"({"q":{"name":"a","heartbeat_ttl":"1s","heartbeat_interval":"2s"}})",
          "heartbeat_interval");
  refused(R"({"q":{"name":"a","max_attempts":"many"}})", "max_attempts");
  refused(R"({"q":{"name":"a","retry_delay":"2m","retry_delay_max":"1m"}})", "retry_delay");
  refused(R"({"q":{"name":"a","retry_delay":"soon"}})", "retry_delay");
}

BOOST_AUTO_TEST_CASE(the_retry_delay_doubles_per_failure_up_to_its_maximum) {
  queue::queue_options off;
  BOOST_TEST(off.retry_delay.count() == 0);  // default: back in the queue at once
  BOOST_TEST(off.retry_delay_after(5).count() == 0);
  auto cfg = corvo::config::from_string(
      R"({"q":{"name":"a","retry_delay":"250ms","retry_delay_max":"1s"}})");
  const auto o = queue::queue_options::from(cfg, "q");
  BOOST_TEST(o.retry_delay.count() == 250);
  BOOST_TEST(o.retry_delay_max.count() == 1000);
  BOOST_TEST(o.retry_delay_after(1).count() == 250);
  BOOST_TEST(o.retry_delay_after(2).count() == 500);
  BOOST_TEST(o.retry_delay_after(3).count() == 1000);
  BOOST_TEST(o.retry_delay_after(4).count() == 1000);
  BOOST_TEST(o.retry_delay_after(1'000'000).count() == 1000);  // no overflow
}

namespace {

struct point {
  int x = 0;
};
point tag_invoke(boost::json::value_to_tag<point>, const boost::json::value& v) {
  return {static_cast<int>(v.as_object().at("x").as_int64())};
}

}  // namespace

BOOST_AUTO_TEST_CASE(typed_handlers_refuse_what_they_cannot_handle_as_permanent) {
  queue::typed_handlers handlers;
  handlers.on<point>("point",
                     [](point, const queue::item&) -> boost::asio::awaitable<void> { co_return; });
  BOOST_TEST(handlers.handles("point"));
  BOOST_TEST((handlers.types() == std::vector<std::string>{"point"}));
  const auto kind_of = [&](const std::string& body) {
    queue::item it;
    it.body = body;
    try {
      (void)handlers(it);
      return std::string("accepted");
    } catch (const queue::permanent_error& e) {
      return e.kind();
    }
  };
  BOOST_TEST(kind_of(queue::producer::typed_body("point", {{"x", 1}})) == "accepted");
  BOOST_TEST(kind_of("not json") == "decode_error");
  BOOST_TEST(kind_of("[1,2]") == "decode_error");
  BOOST_TEST(kind_of(R"({"payload":{}})") == "decode_error");
  BOOST_TEST(kind_of(R"({"type":"line","payload":{}})") == "unknown_type");
  BOOST_TEST(kind_of(R"({"type":"point"})") == "decode_error");
  BOOST_TEST(kind_of(R"({"type":"point","payload":{"x":"one"}})") == "decode_error");
}
