#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <cstdlib>
#include <fstream>

#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using corvo::config;
using corvo::config_error;

namespace {

const char* sample = R"({
  // comments are allowed
  "redis": {"url": "redis://127.0.0.1:6379", "pool": 4},
  "scheduler": {"provider": "memory", "max_in_flight": 50, "claim_timeout": "2s",
                "enabled": true},
  "kafka": {"bootstrap.servers": "embedded:3", "acks": "all"},
  "tags": ["a", "b"],
})";

bool message_contains(const config_error& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config_suite)

BOOST_AUTO_TEST_CASE(typed_values_by_dotted_key) {
  const auto c = config::from_string(sample, "test.json");
  BOOST_TEST(c.get<std::string>("redis.url") == "redis://127.0.0.1:6379");
  BOOST_TEST(c.get<int>("redis.pool") == 4);
  BOOST_TEST(c.get<std::size_t>("scheduler.max_in_flight") == 50u);
  BOOST_TEST(c.get<std::chrono::milliseconds>("scheduler.claim_timeout").count() == 2000);
  BOOST_TEST(c.get<bool>("scheduler.enabled"));
  BOOST_TEST(c.get<std::string>("kafka.bootstrap.servers") == "embedded:3");
  BOOST_TEST(c.get<std::vector<std::string>>("tags") == (std::vector<std::string>{"a", "b"}));
  BOOST_TEST(c.get_or<int>("redis.missing", 7) == 7);
  BOOST_TEST(c.section("scheduler").get<std::string>("provider") == "memory");
}

BOOST_AUTO_TEST_CASE(missing_key_is_named) {
  const auto c = config::from_string(sample, "test.json");
  BOOST_CHECK_EXCEPTION(c.get<std::string>("redis.password"), config_error, [](const auto& e) {
    return e.key() == "redis.password" && message_contains(e, "missing key 'redis.password'") &&
           message_contains(e, "test.json");
  });
  // A section reports the full key.
  BOOST_CHECK_EXCEPTION(c.section("scheduler").get<int>("shards"), config_error,
                        [](const auto& e) { return e.key() == "scheduler.shards"; });
}

BOOST_AUTO_TEST_CASE(wrong_type_names_key_and_expectation) {
  const auto c = config::from_string(sample, "test.json");
  BOOST_CHECK_EXCEPTION(c.get<int>("redis.url"), config_error, [](const auto& e) {
    return e.key() == "redis.url" && message_contains(e, "must be an integer");
  });
  BOOST_CHECK_EXCEPTION(c.get<bool>("scheduler.provider"), config_error,
                        [](const auto& e) { return message_contains(e, "must be a boolean"); });
  // A present value of the wrong type is an error even with a fallback.
  BOOST_CHECK_THROW(c.get_or<int>("redis.url", 1), config_error);
  BOOST_CHECK_EXCEPTION(c.section("redis.url"), config_error,
                        [](const auto& e) { return message_contains(e, "must be an object"); });
}

BOOST_AUTO_TEST_CASE(environment_overrides_with_conversion_and_origin) {
  auto c = config::from_string(sample, "test.json");
  std::string v1 = "CORVO_SCHEDULER__MAX_IN_FLIGHT=200";
  std::string v2 = "CORVO_REDIS__URL=redis://other:7000";
  std::string v3 = "CORVO_SCHEDULER__CLAIM_TIMEOUT=fifty";
  std::string v4 = "UNRELATED__THING=1";
  std::string v5 = "CORVO_NEW__LIST=x, y,z";
  char* env[] = {v1.data(), v2.data(), v3.data(), v4.data(), v5.data(), nullptr};
  c.apply_environment("CORVO_", env);
  BOOST_TEST(c.get<int>("scheduler.max_in_flight") == 200);
  BOOST_TEST(c.get<std::string>("redis.url") == "redis://other:7000");
  BOOST_TEST(c.get<std::vector<std::string>>("new.list") ==
             (std::vector<std::string>{"x", "y", "z"}));
  BOOST_TEST(!c.contains("unrelated.thing"));
  BOOST_CHECK_EXCEPTION(
      c.get<std::chrono::milliseconds>("scheduler.claim_timeout"), config_error, [](const auto& e) {
        return message_contains(e, "from CORVO_SCHEDULER__CLAIM_TIMEOUT") &&
               message_contains(e, "must be a duration") && message_contains(e, "fifty");
      });
}

BOOST_AUTO_TEST_CASE(integer_range_and_durations) {
  const auto c = config::from_string(
      R"({"big": 5000000000, "neg": -1, "d1": "250ms", "d2": "5m", "d3": 1500, "d4": "2 s"})");
  BOOST_CHECK_THROW(c.get<int>("big"), config_error);
  BOOST_TEST(c.get<std::int64_t>("big") == 5'000'000'000);
  BOOST_CHECK_THROW(c.get<unsigned>("neg"), config_error);
  BOOST_TEST(c.get<std::chrono::milliseconds>("d1").count() == 250);
  BOOST_TEST(c.get<std::chrono::milliseconds>("d2").count() == 300'000);
  BOOST_TEST(c.get<std::chrono::milliseconds>("d3").count() == 1500);
  BOOST_CHECK_THROW(c.get<std::chrono::milliseconds>("d4"), config_error);
}

BOOST_AUTO_TEST_CASE(file_errors_name_the_file_and_position) {
  corvo::test::temp_dir dir("config");
  const auto path = dir.path() / "bad.json";
  std::ofstream(path) << "{\n  \"a\": 1,\n  \"b\": [1, 2\n}\n";
  BOOST_CHECK_EXCEPTION(config::from_file(path), config_error, [&](const auto& e) {
    return message_contains(e, path.string() + ":4:") && message_contains(e, "invalid JSON");
  });
  BOOST_CHECK_EXCEPTION(config::from_file(dir.path() / "absent.json"), config_error,
                        [](const auto& e) { return message_contains(e, "cannot read"); });
  BOOST_CHECK_EXCEPTION(config::from_string("[1,2]", "list.json"), config_error,
                        [](const auto& e) { return message_contains(e, "must be a JSON object"); });
  const auto good = dir.path() / "good.json";
  std::ofstream(good) << sample;
  BOOST_TEST(config::from_file(good).get<std::string>("scheduler.provider") == "memory");
}

// Keys a reader asked for are the known ones; any other key below the section is a typo
// (`max_inflight` for `max_in_flight`) and named with the nearest known key.
BOOST_AUTO_TEST_CASE(unknown_keys_are_named_with_the_nearest_known_one) {
  const auto c = config::from_string(R"({
      "app": {"max_inflight": 5, "lease": "2s", "nested": {"topic": "t", "topik": "u"}},
      "other": {"anything": 1}})",
                                     "app.json");
  const auto app = c.section("app");
  (void)app.get_or<int>("max_in_flight", 1);
  (void)app.get_or<std::chrono::milliseconds>("lease", 1s);
  (void)app.section("nested").get_or<std::string>("topic", "");
  BOOST_CHECK_EXCEPTION(c.reject_unknown_keys("app"), config_error, [](const auto& e) {
    return e.key() == "app.max_inflight" && message_contains(e, "unknown key 'app.max_inflight'") &&
           message_contains(e, "app.json") && message_contains(e, "did you mean 'max_in_flight'");
  });
  // Fixed: the nested section is checked too.
  auto fixed =
      config::from_string(R"({"app": {"max_in_flight": 5, "nested": {"topik": "u"}}})", "app.json");
  const auto again = fixed.section("app");
  (void)again.get_or<int>("max_in_flight", 1);
  (void)again.section("nested").get_or<std::string>("topic", "");
  BOOST_CHECK_EXCEPTION(fixed.reject_unknown_keys("app"), config_error, [](const auto& e) {
    return e.key() == "app.nested.topik" && message_contains(e, "did you mean 'topic'");
  });
  // A key nobody asked about and nothing near it: no suggestion.
  auto far = config::from_string(R"({"app": {"zzzzzzzzzz": 1}})");
  (void)far.section("app").get_or<int>("max_in_flight", 1);
  BOOST_CHECK_EXCEPTION(far.reject_unknown_keys("app"), config_error, [](const auto& e) {
    return e.key() == "app.zzzzzzzzzz" && !message_contains(e, "did you mean");
  });
  // Sections nobody checks (the application's own) are left alone; a fully read section
  // passes; an environment override with a typo is caught and its origin named.
  auto good = config::from_string(R"({"app": {"max_in_flight": 5}, "mine": {"x": 1}})");
  (void)good.section("app").get_or<int>("max_in_flight", 1);
  BOOST_CHECK_NO_THROW(good.reject_unknown_keys("app"));
  std::string typo = "CORVO_APP__MAX_INFLIHT=3";
  char* env[] = {typo.data(), nullptr};
  good.apply_environment("CORVO_", env);
  BOOST_CHECK_EXCEPTION(good.reject_unknown_keys("app"), config_error, [](const auto& e) {
    return e.key() == "app.max_infliht" && message_contains(e, "CORVO_APP__MAX_INFLIHT") &&
           message_contains(e, "did you mean 'max_in_flight'");
  });
}

BOOST_AUTO_TEST_CASE(edit_distance_suggestions) {
  using corvo::nearest_key;
  const std::vector<std::string> known{"max_in_flight", "claim_batch", "lease", "drain_timeout"};
  BOOST_TEST(nearest_key("max_inflight", known).value_or("") == "max_in_flight");
  BOOST_TEST(nearest_key("leese", known).value_or("") == "lease");
  BOOST_TEST(nearest_key("drain-timeout", known).value_or("") == "drain_timeout");
  BOOST_TEST(!nearest_key("provider", known).has_value());
  BOOST_TEST(!nearest_key("x", known).has_value());
}

// from_file applies CORVO_* overrides by default, as the docs say; a caller can opt out.
BOOST_AUTO_TEST_CASE(from_file_applies_environment_overrides_by_default) {
  corvo::test::temp_dir dir("config-env");
  const auto path = dir.path() / "app.json";
  std::ofstream(path) << R"({"scheduler": {"max_in_flight": 50}})";
  ::setenv("CORVO_SCHEDULER__MAX_IN_FLIGHT", "7", 1);
  const auto overridden = config::from_file(path);
  const auto plain = config::from_file(path, {.apply_environment = false});
  ::unsetenv("CORVO_SCHEDULER__MAX_IN_FLIGHT");
  BOOST_TEST(overridden.get<int>("scheduler.max_in_flight") == 7);
  BOOST_TEST(plain.get<int>("scheduler.max_in_flight") == 50);
}

BOOST_AUTO_TEST_SUITE_END()
