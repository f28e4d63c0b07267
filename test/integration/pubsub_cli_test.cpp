// `corvo pubsub publish|listen` against a real redis-server, run as separate processes:
// a listener prints every message of its channel, pattern and shard channel as JSON lines;
// publish reports the receivers; bad input exits 2 with a message, an unreachable server
// and a refused subscription (NOPERM) exit 1 naming the cause.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

corvo::test::command_result run_corvo(std::vector<std::string> words) {
  std::vector<std::string> argv{corvo::test::corvo_program().string()};
  argv.insert(argv.end(), words.begin(), words.end());
  return corvo::test::run_command(argv, std::chrono::seconds(30));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls (the test thread has no io_context here) until `done` holds or 20 s passed.
template <class Done>
bool wait_until(Done done) {
  for (int i = 0; i < 2000; ++i) {
    if (done())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pubsub_cli)

BOOST_AUTO_TEST_CASE(listen_prints_every_message_and_publish_reports_receivers) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("pubsub-cli");
  const auto log = dir.path() / "listen.log";
  corvo::test::child_process listener(
      {corvo::test::corvo_program().string(), "pubsub", "listen", "--redis", server.url(),
       "--channel", "news", "--pattern", "ne*", "--shard-channel", "{s}feed", "--count", "3",
       "--json"},
      dir.path(), log);
  BOOST_REQUIRE(wait_until([&] {
    return server.cli("PUBSUB", "NUMSUB", "news") == "news\n1" &&
           server.cli("PUBSUB", "SHARDNUMSUB", "{s}feed") == "{s}feed\n1" &&
           server.cli("PUBSUB", "NUMPAT") == "1";
  }));

  auto r = run_corvo({"pubsub", "publish", "news", "hello", "--redis", server.url(), "--json"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto published = json::parse(r.out).as_object();
  BOOST_TEST(published.at("channel").as_string() == "news");
  BOOST_TEST(published.at("receivers").as_int64() == 2);  // the channel and the pattern
  r = run_corvo({"pubsub", "publish", "{s}feed", R"({"n":1})", "--shard", "--redis", server.url()});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(r.out == "published to shard channel {s}feed (1 receivers)\n");

  const auto status = listener.wait_for(20'000ms);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(WIFEXITED(*status));
  BOOST_TEST(WEXITSTATUS(*status) == 0, read_file(log));
  std::istringstream lines(read_file(log));
  std::multiset<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    const auto m = json::parse(line).as_object();
    seen.insert(std::string(m.at("kind").as_string()) + " " +
                std::string(m.at("channel").as_string()) + " " +
                std::string(m.at("payload").as_string()));
    if (m.at("kind").as_string() == "pattern") {
      BOOST_TEST(m.at("pattern").as_string() == "ne*");
    }
  }
  const std::multiset<std::string> expected{"channel news hello", "pattern news hello",
                                            R"(shard {s}feed {"n":1})"};
  BOOST_TEST(seen == expected);
}

BOOST_AUTO_TEST_CASE(listen_for_a_while_exits_0_and_publish_without_receivers_counts_0) {
  corvo::test::redis_server server;
  auto r = run_corvo({"pubsub", "listen", "quiet", "--for", "300ms", "--redis", server.url()});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(r.out == "");
  r = run_corvo({"pubsub", "publish", "nobody", "x", "--redis", server.url(), "--json"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(json::parse(r.out).as_object().at("receivers").as_int64() == 0);
}

BOOST_AUTO_TEST_CASE(bad_input_exits_2_with_a_message) {
  const auto exits_2_saying = [](std::vector<std::string> words, const std::string& text) {
    const auto r = run_corvo(words);
    BOOST_TEST(r.exit_code == 2, r.err);
    BOOST_TEST(r.err.find(text) != std::string::npos, r.err);
  };
  exits_2_saying({"pubsub"}, "usage:");
  exits_2_saying({"pubsub", "shout"}, "unknown subcommand 'shout'");
  exits_2_saying({"pubsub", "publish", "news"}, "message");
  exits_2_saying({"pubsub", "publish", "", "x"}, "channel name is empty");
  exits_2_saying({"pubsub", "listen"}, "nothing to listen to");
  exits_2_saying({"pubsub", "listen", "news", "--count", "0"}, "--count must be more than 0");
  exits_2_saying({"pubsub", "listen", "news", "--for", "banana"}, "--for 'banana'");
  exits_2_saying({"pubsub", "listen", "news", "--frobnicate"}, "frobnicate");
  exits_2_saying({"pubsub", "listen", "news", "--redis", "http://x"}, "redis");
  const auto help = run_corvo({"pubsub", "listen", "--help"});
  BOOST_TEST(help.exit_code == 0);
  BOOST_TEST(help.out.find("--shard-channel") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(unreachable_server_and_refused_subscription_exit_1_naming_the_cause) {
  auto r = run_corvo({"pubsub", "publish", "news", "x", "--redis", "redis://127.0.0.1:1",
                      "--connect-timeout", "500ms"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("127.0.0.1:1") != std::string::npos, r.err);

  corvo::test::redis_server server(
      {.acl_user = corvo::test::redis_acl_user{"reader", "pw", "~* resetchannels &public* +@all"}});
  r = run_corvo({"pubsub", "listen", "secret", "--for", "5s", "--redis", server.url()});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("refused the subscription") != std::string::npos, r.err);
  r = run_corvo({"pubsub", "listen", "public-news", "--for", "200ms", "--redis", server.url()});
  BOOST_TEST(r.exit_code == 0, r.err);
}

BOOST_AUTO_TEST_SUITE_END()
