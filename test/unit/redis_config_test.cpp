#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/redis/config.hpp>
#include <stdexcept>

using corvo::redis::config;

namespace {
bool says(const std::invalid_argument& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(redis_config)

BOOST_AUTO_TEST_CASE(full_url) {
  const auto c = config::from_url("redis://alice:p%40ss%3Aword@cache.local:7001/3?name=worker-1");
  BOOST_TEST(!c.use_tls);
  BOOST_TEST(c.username == "alice");
  BOOST_TEST(c.password == "p@ss:word");
  BOOST_TEST(c.host == "cache.local");
  BOOST_TEST(c.port == "7001");
  BOOST_TEST(c.database == 3);
  BOOST_TEST(c.client_name == "worker-1");
  BOOST_TEST(c.address() == "cache.local:7001");
}

BOOST_AUTO_TEST_CASE(defaults_password_only_tls_and_ipv6) {
  const auto plain = config::from_url("redis://localhost");
  BOOST_TEST(plain.port == "6379");
  BOOST_TEST(plain.database == 0);
  BOOST_TEST(plain.password.empty());

  const auto password_only = config::from_url("redis://:secret@10.0.0.5:6380");
  BOOST_TEST(password_only.username.empty());
  BOOST_TEST(password_only.password == "secret");

  const auto tls = config::from_url("rediss://h:6390?ca=/etc/ca.pem&verify=false&sni=redis.prod");
  BOOST_TEST(tls.use_tls);
  BOOST_TEST(tls.tls_ca_file == "/etc/ca.pem");
  BOOST_TEST(!tls.tls_verify);
  BOOST_TEST(tls.tls_server_name == "redis.prod");

  const auto v6 = config::from_url("redis://[::1]:7000/1");
  BOOST_TEST(v6.host == "::1");
  BOOST_TEST(v6.port == "7000");
  BOOST_TEST(v6.database == 1);
}

BOOST_AUTO_TEST_CASE(bad_urls_say_what_is_wrong) {
  BOOST_CHECK_EXCEPTION(config::from_url("http://x"), std::invalid_argument,
                        [](const auto& e) { return says(e, "scheme"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://h:99999"), std::invalid_argument,
                        [](const auto& e) { return says(e, "invalid port '99999'"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://h:12ab"), std::invalid_argument,
                        [](const auto& e) { return says(e, "invalid port"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://h/db1"), std::invalid_argument,
                        [](const auto& e) { return says(e, "database"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://:6379"), std::invalid_argument,
                        [](const auto& e) { return says(e, "host is missing"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://u:p%4@h"), std::invalid_argument,
                        [](const auto& e) { return says(e, "percent-escape"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://u:p%zz@h"), std::invalid_argument,
                        [](const auto& e) { return says(e, "percent-escape"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://h?colour=blue"), std::invalid_argument,
                        [](const auto& e) { return says(e, "unknown parameter 'colour'"); });
  BOOST_CHECK_EXCEPTION(config::from_url("redis://[::1:7000"), std::invalid_argument,
                        [](const auto& e) { return says(e, "IPv6"); });
}

// The `redis` section of the application configuration: a typo is an error naming the key
// and the nearest known one, whichever mode (standalone or cluster) the section selects.
BOOST_AUTO_TEST_CASE(unknown_keys_in_the_redis_section_are_refused) {
  using corvo::redis::client_config;
  const auto refused = [](const char* json, const std::string& key, const std::string& hint) {
    BOOST_TEST_CONTEXT(json) {
      BOOST_CHECK_EXCEPTION(client_config::from(corvo::config::from_string(json)),
                            corvo::config_error, [&](const corvo::config_error& e) {
                              return e.key() == key &&
                                     std::string(e.what()).find("did you mean '" + hint + "'") !=
                                         std::string::npos;
                            });
    }
  };
  refused(R"({"redis": {"url": "redis://h:1", "ulr": "redis://h:2"}})", "redis.ulr", "url");
  refused(R"({"redis": {"url": "redis://h:1", "cluster": {"seed": ["redis://h:1"]}}})",
          "redis.cluster.seed", "seeds");
  refused(R"({"redis": {"cluster": {"seeds": ["redis://h:1"], "max_redirection": 3}}})",
          "redis.cluster.max_redirection", "max_redirections");
  // Every documented key is known, in both modes.
  BOOST_CHECK_NO_THROW(client_config::from(corvo::config::from_string(
      R"({"redis": {"url": "redis://h:1", "cluster": {"enabled": false}}})")));
  BOOST_CHECK_NO_THROW(client_config::from(corvo::config::from_string(R"({"redis": {
      "url": "redis://h:1", "cluster": {"seeds": ["redis://h:1"], "enabled": true,
      "max_redirections": 3, "retry_deadline": "2s", "refresh_interval": "10s",
      "min_refresh_interval": "1s", "use_cluster_shards": true}}})")));
}

BOOST_AUTO_TEST_SUITE_END()
