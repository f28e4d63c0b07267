// `corvo queue info|dead list|dead replay|dead purge` against a real redis-server, run as a
// separate process, including bad input.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/queue/item.hpp>
#include <filesystem>
#include <fstream>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/free_port.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace json = boost::json;
namespace queue = corvo::queue;

namespace {

struct cli {
  std::vector<std::string> connection;
  corvo::test::command_result operator()(std::vector<std::string> words) const {
    std::vector<std::string> argv{corvo::test::corvo_program().string(), "queue"};
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

// A dead letter as the queue scripts write it.
std::string dead_entry(const std::string& id, const std::string& body, const std::string& reason) {
  return R"({"reason":")" + reason + R"(","attempts":3,"consumer":"w1","at_ms":1764000000123})" +
         "\n" + queue::encode_envelope(id, 3, body);
}

}  // namespace

BOOST_AUTO_TEST_CASE(info_list_replay_and_purge) {
  corvo::test::redis_server server;
  const cli corvo{{"--redis", server.url()}};
  server.cli("LPUSH", "jobs", queue::encode_envelope("a", 0, "one"),
             queue::encode_envelope("b", 0, "two"));
  server.cli("LPUSH", "{jobs}:processing:w1", queue::encode_envelope("c", 0, "three"));
  server.cli("SET", "{jobs}:heartbeat:w1", "1", "PX", "60000");
  server.cli("ZADD", "{jobs}:consumers", "1764000000000", "w1");
  server.cli("ZADD", "{jobs}:consumers", "1764000000000", "w0");  // no heartbeat: dead
  server.cli("LPUSH", "{jobs}:dead", dead_entry("d1", "poison-1", "boom"),
             dead_entry("d2", "poison-2", "bang"));

  auto info = corvo.json_of({"info", "jobs"});
  BOOST_TEST(info.at("queue").as_string() == "jobs");
  BOOST_TEST(info.at("depth").as_int64() == 2);
  BOOST_TEST(info.at("dead").as_int64() == 2);
  const auto& consumers = info.at("consumers").as_array();
  BOOST_TEST_REQUIRE(consumers.size() == 2u);
  BOOST_TEST(consumers[0].at("id").as_string() == "w0");
  BOOST_TEST(consumers[0].at("alive").as_bool() == false);
  BOOST_TEST(consumers[1].at("id").as_string() == "w1");
  BOOST_TEST(consumers[1].at("alive").as_bool() == true);
  BOOST_TEST(consumers[1].at("processing").as_int64() == 1);

  auto text = corvo({"info", "jobs"});
  BOOST_TEST(text.exit_code == 0);
  BOOST_TEST(text.out.find("queue jobs: 2 waiting, 2 dead") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("w0  dead (heartbeat expired)  processing 0") != std::string::npos,
             text.out);

  auto dead = corvo.json_of({"dead", "list", "jobs"});
  BOOST_TEST_REQUIRE(dead.as_array().size() == 2u);
  BOOST_TEST(dead.as_array()[0].at("id").as_string() == "d2");  // newest first
  BOOST_TEST(dead.as_array()[0].at("reason").as_string() == "bang");
  BOOST_TEST(dead.as_array()[0].at("body").as_string() == "poison-2");
  BOOST_TEST(dead.as_array()[0].at("attempts").as_int64() == 3);
  BOOST_TEST(dead.as_array()[1].at("consumer").as_string() == "w1");
  auto limited = corvo.json_of({"dead", "list", "jobs", "--offset", "1", "--limit", "1"});
  BOOST_TEST_REQUIRE(limited.as_array().size() == 1u);
  BOOST_TEST(limited.as_array()[0].at("id").as_string() == "d1");
  auto listed = corvo({"dead", "list", "jobs"});
  BOOST_TEST(listed.out.find("d1  attempts 3  consumer w1  at 2025-11-24T16:00:00.123Z  reason: "
                             "boom  body: poison-1") != std::string::npos,
             listed.out);

  // Replay one: back in the queue with attempts 0, same id.
  auto replayed = corvo.json_of({"dead", "replay", "jobs", "d1"});
  BOOST_TEST(replayed.at("replayed").as_int64() == 1);
  BOOST_TEST(server.cli("LINDEX", "jobs", "0") == queue::encode_envelope("d1", 0, "poison-1"));
  auto again = corvo({"dead", "replay", "jobs", "d1"});
  BOOST_TEST(again.exit_code == 1);
  BOOST_TEST(again.out.find("no dead letter of item d1") != std::string::npos, again.out);

  // Purge everything left.
  auto purged = corvo({"dead", "purge", "jobs", "--all"});
  BOOST_TEST(purged.exit_code == 0, purged.err);
  BOOST_TEST(purged.out == "purged 1 dead letter(s)\n");
  BOOST_TEST(server.cli("LLEN", "{jobs}:dead") == "0");
}

BOOST_AUTO_TEST_CASE(the_queue_comes_from_the_application_configuration) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("queue-cli");
  const auto path = dir.path() / "app.json";
  std::ofstream(path) << R"({"redis":{"url":")" << server.url()
                      << R"("},"coupons":{"name":"coupon-requests","max_attempts":4}})";
  server.cli("LPUSH", "coupon-requests", queue::encode_envelope("a", 0, "x"));
  const cli corvo{{"--config", path.string(), "--section", "coupons"}};
  auto info = corvo.json_of({"info"});
  BOOST_TEST(info.at("queue").as_string() == "coupon-requests");
  BOOST_TEST(info.at("depth").as_int64() == 1);

  // An unknown key in the queue's section is refused, naming the nearest known one.
  std::ofstream(path) << R"({"redis":{"url":")" << server.url()
                      << R"("},"coupons":{"name":"c","max_attempt":4}})";
  auto bad = corvo({"info"});
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(bad.err.find("max_attempt") != std::string::npos, bad.err);
  BOOST_TEST(bad.err.find("max_attempts") != std::string::npos, bad.err);
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_with_a_reason) {
  corvo::test::redis_server server;
  const cli corvo{{"--redis", server.url()}};
  auto r = corvo({});
  BOOST_TEST(r.exit_code == 2);
  r = corvo({"frobnicate"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("unknown subcommand 'frobnicate'") != std::string::npos, r.err);
  r = corvo({"dead", "bury", "jobs"});
  BOOST_TEST(r.exit_code == 2);
  r = corvo({"info"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("missing QUEUE") != std::string::npos, r.err);
  r = corvo({"dead", "purge", "jobs"});  // neither an id nor --all
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("give exactly one of an item ID and --all") != std::string::npos, r.err);
  r = corvo({"dead", "replay", "jobs", "x", "--all"});
  BOOST_TEST(r.exit_code == 1);
  r = corvo({"dead", "list", "jobs", "--limit", "many"});
  BOOST_TEST(r.exit_code == 1);
  // A key of another type: the server's error, not a crash.
  server.cli("SET", "{jobs}:dead", "not a list");
  r = corvo({"dead", "list", "jobs"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("WRONGTYPE") != std::string::npos, r.err);
  // Nobody listening.
  const cli nowhere{{"--redis", "redis://127.0.0.1:" + std::to_string(corvo::test::free_port()),
                     "--connect-timeout", "1s"}};
  r = nowhere({"info", "jobs"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("cannot connect to Redis") != std::string::npos, r.err);
  auto help = corvo({"info", "--help"});
  BOOST_TEST(help.exit_code == 0);
  BOOST_TEST(help.out.find("corvo queue info QUEUE") != std::string::npos);
}
