// stream::consumer_options and stream::producer_options from configuration.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/stream/consumer_options.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <corvo/stream/producer.hpp>

using namespace std::chrono_literals;
namespace stream = corvo::stream;

BOOST_AUTO_TEST_SUITE(stream_config)

BOOST_AUTO_TEST_CASE(consumer_options_are_read_from_the_stream_section) {
  const auto cfg = corvo::config::from_string(R"({"stream":{"consumer":{
      "group":"billing","streams":"{orders}:events, {refunds}:events","consumer":"w1",
      "start_id":"$","batch":50,"block":"1s","max_in_flight":8,"ordered_by_key":true,
      "min_idle":"10s","claim_interval":"2s","claim_batch":20,"max_deliveries":3,
      "retry_backoff":{"initial":"50ms","max":"5s"},"redis_retry":{"initial":10,"max":100},
      "drain_timeout":"3s","ack_batch":64,"delete_idle_consumers_after":"1h"}}})");
  const auto o = stream::consumer_options::from(cfg);
  BOOST_TEST(o.group == "billing");
  BOOST_TEST((o.streams == std::vector<std::string>{"{orders}:events", "{refunds}:events"}));
  BOOST_TEST(o.consumer == "w1");
  BOOST_TEST(o.start_id == "$");
  BOOST_TEST(o.batch == 50u);
  BOOST_TEST(o.block.count() == 1000);
  BOOST_TEST(o.max_in_flight == 8u);
  BOOST_TEST(o.ordered_by_key);
  BOOST_TEST(o.min_idle.count() == 10'000);
  BOOST_TEST(o.claim_interval.count() == 2000);
  BOOST_TEST(o.claim_batch == 20u);
  BOOST_TEST(o.max_deliveries == 3u);
  BOOST_TEST(o.retry_backoff.initial.count() == 50);
  BOOST_TEST(o.retry_backoff.max.count() == 5000);
  BOOST_TEST(o.redis_retry.max.count() == 100);
  BOOST_TEST(o.drain_timeout.count() == 3000);
  BOOST_TEST(o.ack_batch == 64u);
  BOOST_TEST(o.delete_idle_consumers_after.count() == 3'600'000);
}

BOOST_AUTO_TEST_CASE(unknown_keys_and_missing_group_are_rejected) {
  const auto typo = corvo::config::from_string(
      R"({"stream":{"consumer":{"group":"g","streams":["s"],"max_inflight":3}}})");
  BOOST_CHECK_EXCEPTION(stream::consumer_options::from(typo), corvo::config_error,
                        [](const corvo::config_error& e) {
                          return std::string(e.what()).find("max_in_flight") != std::string::npos;
                        });
  const auto no_group = corvo::config::from_string(R"({"stream":{"consumer":{"streams":["s"]}}})");
  BOOST_CHECK_THROW(stream::consumer_options::from(no_group), corvo::config_error);
  const auto zero = corvo::config::from_string(
      R"({"stream":{"consumer":{"group":"g","streams":["s"],"batch":0}}})");
  BOOST_CHECK_THROW(stream::consumer_options::from(zero), corvo::config_error);
}

BOOST_AUTO_TEST_CASE(producer_trimming_per_stream) {
  const auto cfg = corvo::config::from_string(R"({"stream":{"producer":{"max_len":1000,
      "streams":{"{audit}:events":{"retention":"2h"}}}}})");
  const auto o = stream::producer_options::from(cfg);
  BOOST_TEST(o.trim.max_len == 1000u);
  BOOST_TEST(o.streams.at("{audit}:events").retention.count() == 7'200'000);
  BOOST_TEST(o.streams.at("{audit}:events").max_len == 0u);
  const auto both =
      corvo::config::from_string(R"({"stream":{"producer":{"max_len":10,"retention":"1h"}}})");
  BOOST_CHECK_THROW(stream::producer_options::from(both), corvo::config_error);
  const auto typo = corvo::config::from_string(R"({"stream":{"producer":{"maxlen":10}}})");
  BOOST_CHECK_THROW(stream::producer_options::from(typo), corvo::config_error);
}

BOOST_AUTO_TEST_CASE(default_consumer_name_is_host_and_pid) {
  const auto name = stream::default_consumer_name();
  BOOST_TEST(name.ends_with("-" + std::to_string(::getpid())));
  BOOST_TEST(name.size() > std::to_string(::getpid()).size() + 1);
}

BOOST_AUTO_TEST_SUITE_END()
