// `corvo schedule|dead|stats` against a real redis-server, run as a separate process.
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/redis_store.hpp>

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include "support/child_process.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

#include <filesystem>

namespace asio = boost::asio;
namespace json = boost::json;
namespace redis = corvo::redis;
using namespace corvo::schedule;

namespace {

// The `corvo` program, built next to the tests: <build>/tools/corvo.
std::string corvo_program() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / "tools" / "corvo").string();
}

struct cli {
  std::string url;
  corvo::test::command_result operator()(std::vector<std::string> words) const {
    std::vector<std::string> argv{corvo_program()};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.insert(argv.end(), {"--redis", url, "--namespace", "cli", "--shards", "4"});
    return corvo::test::run_command(argv, std::chrono::seconds(30));
  }
  json::value json_of(std::vector<std::string> words) const {
    words.push_back("--json");
    const auto r = (*this)(words);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return json::parse(r.out);
  }
};

// Claims `id` and dead-letters it, as a failing worker would.
asio::awaitable<void> kill_task(redis_store& s, std::string id) {
  const auto shard = s.shard_of(id);
  auto claimed = co_await s.claim(shard, 10, std::chrono::milliseconds(10'000));
  BOOST_REQUIRE(claimed.tasks.size() == 1u);
  failure f{id, claimed.tasks[0].token, "handler exploded", std::nullopt};
  co_await s.nack(shard, std::move(f));
}

}  // namespace

BOOST_AUTO_TEST_CASE(schedule_get_list_cancel_dead_and_stats) {
  corvo::test::redis_server server;
  const cli corvo{server.url()};

  auto r = corvo({"schedule", "add", "--id", "order-42", "--type", "email.timeout", "--payload",
                  R"({"order":42})", "--in", "1h", "--max-attempts", "3"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(r.out == "scheduled order-42\n");
  r = corvo({"schedule", "add", "--id", "daily", "--type", "report", "--in", "10m", "--cron",
             "0 9 * * MON-FRI"});
  BOOST_TEST(r.exit_code == 0, r.err);

  const auto got = corvo.json_of({"schedule", "get", "order-42"}).as_object();
  BOOST_TEST(got.at("type").as_string() == "email.timeout");
  BOOST_TEST(got.at("state").as_string() == "scheduled");
  BOOST_TEST(got.at("max_attempts").as_int64() == 3);
  BOOST_TEST(got.at("payload").as_object().at("order").as_int64() == 42);

  const auto listed = corvo.json_of({"schedule", "list"}).as_array();
  BOOST_REQUIRE(listed.size() == 2u);
  BOOST_TEST(listed[0].as_object().at("id").as_string() == "daily");  // due order
  BOOST_TEST(listed[0].as_object().at("recurrence").as_string() == "cron 0 9 * * MON-FRI");

  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("scheduled").as_int64() == 2);
  BOOST_TEST(corvo({"schedule", "cancel", "order-42"}).exit_code == 0);
  r = corvo({"schedule", "get", "order-42"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("no task 'order-42'") != std::string::npos);

  // A task in the dead-letter set: listed with its reason, replayed, purged.
  {
    corvo::test::run_command_checked({corvo_program(), "schedule", "add", "--id", "doomed",
                                      "--type", "t", "--at", "1000000", "--redis", server.url(),
                                      "--namespace", "cli", "--shards", "4"});
    asio::io_context ctx;
    redis::client conn(ctx.get_executor(), redis::client_config::from_url(server.url()));
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
    redis_store s(conn, redis::client_config::from_url(server.url()), {.name_space = "cli", .shards = 4});
    corvo::test::run(ctx, kill_task(s, "doomed"), [&] { conn.cancel(); });
  }
  const auto dead = corvo.json_of({"dead", "list"}).as_array();
  BOOST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].as_object().at("last_error").as_string() == "handler exploded");
  BOOST_TEST(corvo({"dead", "replay", "doomed"}).exit_code == 0);
  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("dead").as_int64() == 0);
  BOOST_TEST(corvo({"dead", "replay", "doomed"}).exit_code == 1);  // no longer dead
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_with_a_clear_error) {
  corvo::test::redis_server server;
  const cli corvo{server.url()};
  auto r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--payload", "{oops", "--in", "1s"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--payload is not JSON") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--cron", "61 * * * *"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("minute field") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "soon"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("must be a duration") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("exactly one of --at and --in") != std::string::npos, r.err);
  r = corvo({"schedule", "frobnicate"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("scheduled").as_int64() == 0);  // nothing added
}
