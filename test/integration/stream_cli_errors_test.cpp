// `corvo stream` (run as a separate process): bad input (unknown stream, wrong type, bad id,
// unknown flag, contradicting options, unreachable Redis) -> a clear error and a non-zero
// exit; and the --config / --cluster targets on the 6-node cluster. (The verbs' output:
// stream_cli_test.)
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace json = boost::json;

namespace {

struct cli {
  std::vector<std::string> connection;
  corvo::test::command_result operator()(std::vector<std::string> words) const {
    std::vector<std::string> argv{corvo::test::corvo_program().string()};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.insert(argv.end(), connection.begin(), connection.end());
    return corvo::test::run_command(argv, std::chrono::seconds(30));
  }
  json::value json_of(std::vector<std::string> words) const {
    words.push_back("--json");
    const auto r = (*this)(words);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return json::parse(r.out);
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// orders: 1000-0 … 4000-0; group billing read 1000 … 3000, acked 1000 (2000, 3000 pending).
void seed(corvo::test::redis_server& server) {
  for (int i = 1; i <= 4; ++i) {
    server.cli("XADD", "orders", std::to_string(i * 1000) + "-0", "n", std::to_string(i));
  }
  server.cli("XGROUP", "CREATE", "orders", "billing", "0");
  server.cli("XREADGROUP", "GROUP", "billing", "b1", "COUNT", "3", "STREAMS", "orders", ">");
  server.cli("XACK", "orders", "billing", "1000-0");
  server.cli("SET", "a-string", "x");
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error_and_a_non_zero_exit) {
  corvo::test::redis_server server;
  seed(server);
  const cli corvo{{"--redis", server.url()}};

  auto r = corvo({"stream", "info", "no-such-stream"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "stream 'no-such-stream' does not exist"), r.err);
  r = corvo({"stream", "info", "a-string"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "key 'a-string' holds a string, not a stream"), r.err);
  r = corvo({"stream", "pending", "orders", "nobody"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "no consumer group 'nobody'"), r.err);
  r = corvo({"stream", "dlq", "replay", "orders", "yesterday"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "dead letter id 'yesterday' is not a stream id"), r.err);
  r = corvo({"stream", "trim", "orders", "--min-id", "12-x"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "--min-id '12-x' is not a stream id"), r.err);
  r = corvo({"stream", "trim", "orders"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "give exactly one of --max-age and --min-id"), r.err);
  r = corvo({"stream", "trim", "orders", "--max-age", "forever"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "max-age"), r.err);
  r = corvo({"stream", "info", "orders", "--bogus"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "--bogus"), r.err);
  r = corvo({"stream", "dlq", "purge", "orders"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "give exactly one of ID, --all and --older-than"), r.err);
  r = corvo({"stream", "explode", "orders"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(contains(r.err, "unknown subcommand 'explode'"), r.err);
  r = corvo({"stream", "dlq", "resurrect", "orders"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(contains(r.err, "unknown subcommand 'resurrect'"), r.err);
  // Nothing there: a clear connection error within the timeout.
  const cli nowhere{{"--redis", "redis://127.0.0.1:1", "--connect-timeout", "1s"}};
  r = nowhere({"stream", "info", "orders"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "cannot connect to Redis at 127.0.0.1:1"), r.err);
  // --help needs no server.
  r = nowhere({"stream", "trim", "--help"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(contains(r.out, "--trim-undelivered"), r.out);
}

BOOST_AUTO_TEST_CASE(config_file_and_cluster_targets) {
  corvo::test::redis_cluster cluster;
  corvo::test::temp_dir dir("stream-cli");
  const auto file = dir.path() / "app.json";
  std::ofstream(file) << R"({"redis": {"cluster": {"seeds": [")" << cluster.seed_urls().at(0)
                      << R"("]}}})";
  const cli by_file{{"--config", file.string()}};
  // One tagged and one untagged stream, written through the cluster CLI's own routing.
  const auto master_of = [&](const std::string& key) -> corvo::test::redis_server& {
    return cluster.node(cluster.node_for_slot(cluster.key_slot(key)));
  };
  master_of("{shop}:orders").cli("XADD", "{shop}:orders", "1000-0", "n", "1");
  master_of("payments").cli("XADD", "payments", "1000-0", "n", "1");
  master_of("payments").cli("XADD", "payments", "*", "n", "2");
  master_of("{payments}:dlq")
      .cli("XADD", "{payments}:dlq", "*", "dlq.stream", "payments", "dlq.id", "1000-0", "dlq.group",
           "g", "dlq.consumer", "c", "dlq.deliveries", "3", "dlq.reason", "r", "dlq.at_ms", "1",
           "n", "1");

  const auto tagged = by_file.json_of({"stream", "info", "{shop}:orders"});
  BOOST_TEST(tagged.at("length").as_int64() == 1);
  const auto trimmed = by_file.json_of({"stream", "trim", "payments", "--max-age", "1h"});
  BOOST_TEST(trimmed.at("trimmed").as_int64() == 1);
  const auto replayed = by_file.json_of({"stream", "dlq", "replay", "payments", "--all"});
  BOOST_TEST(replayed.at(0).at("status").as_string() == "replayed");
  const cli by_seed{{"--cluster", cluster.seed_urls().at(1)}};
  const auto info = by_seed.json_of({"stream", "info", "payments"});
  BOOST_TEST(info.at("length").as_int64() == 2);
}
