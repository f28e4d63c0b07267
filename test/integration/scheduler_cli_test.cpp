// `corvo schedule|dead|stats` against a real redis-server, run as a separate process.
#include <sys/wait.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/free_port.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace redis = corvo::redis;
using namespace corvo::schedule;

namespace {

struct cli {
  std::string url;
  corvo::test::command_result operator()(std::vector<std::string> words) const {
    std::vector<std::string> argv{corvo::test::corvo_program().string()};
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
  r = corvo(
      {"schedule", "add", "--id", "order-42", "--type", "other", "--in", "2h", "--if-absent"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(r.out == "kept order-42 (a task with this id exists)\n");
  // A deduplication window: replaced within it, or dropped with --dedup-drop.
  r = corvo({"schedule", "add", "--id", "digest", "--type", "mail", "--payload", R"("v1")", "--in",
             "1h", "--dedup-window", "10m"});
  BOOST_TEST(r.out == "scheduled digest\n", r.err);
  r = corvo({"schedule", "add", "--id", "digest", "--type", "mail", "--payload", R"("v2")", "--in",
             "2h", "--dedup-window", "10m"});
  BOOST_TEST(r.out == "replaced digest (the waiting task took the new payload and due time)\n",
             r.err);
  const auto dropped =
      corvo.json_of({"schedule", "add", "--id", "digest", "--type", "mail", "--payload", R"("v3")",
                     "--in", "1s", "--dedup-window", "10m", "--dedup-drop"});
  BOOST_TEST(dropped.as_object().at("dropped").as_string() == "digest");
  const auto digest = corvo.json_of({"schedule", "get", "digest"}).as_object();
  BOOST_TEST(digest.at("payload").as_string() == "v2");
  BOOST_TEST(corvo({"schedule", "cancel", "digest"}).exit_code == 0);
  // A deduplication key apart from the id: another id with the key replaces the pending task.
  r = corvo({"schedule", "add", "--id", "save-1", "--type", "index", "--in", "1h", "--dedup-key",
             "doc:9", "--dedup-window", "10m"});
  BOOST_TEST(r.out == "scheduled save-1\n", r.err);
  r = corvo({"schedule", "add", "--id", "save-2", "--type", "index", "--in", "1h", "--dedup-key",
             "doc:9", "--dedup-window", "10m"});
  BOOST_TEST(r.out == "replaced save-2 (in place of save-1, which will not run)\n", r.err);
  const auto replaced =
      corvo.json_of({"schedule", "add", "--id", "save-3", "--type", "index", "--in", "1h",
                     "--dedup-key", "doc:9", "--dedup-window", "10m"});
  BOOST_TEST(replaced.as_object().at("replaced").as_string() == "save-3");
  BOOST_TEST(replaced.as_object().at("pending").as_string() == "save-2");
  r = corvo({"schedule", "add", "--id", "save-4", "--type", "index", "--in", "1h", "--dedup-key",
             "doc:9", "--dedup-window", "10m", "--dedup-drop"});
  BOOST_TEST(r.out == "dropped save-4 (the window of key 'doc:9' is open)\n", r.err);
  BOOST_TEST(corvo({"schedule", "get", "save-2"}).exit_code == 1);
  BOOST_TEST(corvo({"schedule", "get", "save-4"}).exit_code == 1);
  BOOST_TEST(corvo({"schedule", "cancel", "save-3"}).exit_code == 0);
  // A priority, shown by get (normal is not printed).
  r = corvo(
      {"schedule", "add", "--id", "urgent", "--type", "mail", "--in", "1h", "--priority", "high"});
  BOOST_TEST(r.out == "scheduled urgent\n", r.err);
  BOOST_TEST(corvo.json_of({"schedule", "get", "urgent"}).as_object().at("priority").as_string() ==
             "high");
  BOOST_TEST(!corvo.json_of({"schedule", "get", "order-42"}).as_object().contains("priority"));
  BOOST_TEST(corvo({"schedule", "cancel", "urgent"}).exit_code == 0);
  // A run timeout and the task's own retry backoff (the fields not given: the defaults),
  // shown by get; no --max-attempts and no --config: 5.
  r = corvo({"schedule", "add", "--id", "policy", "--type", "mail", "--in", "1h", "--timeout",
             "30s", "--retry-initial", "2s", "--retry-multiplier", "3", "--retry-jitter", "0"});
  BOOST_TEST(r.out == "scheduled policy\n", r.err);
  const auto policy = corvo.json_of({"schedule", "get", "policy"}).as_object();
  BOOST_TEST(policy.at("timeout_ms").as_int64() == 30000);
  BOOST_TEST(policy.at("retry").at("initial_ms").as_int64() == 2000);
  BOOST_TEST(policy.at("retry").at("max_ms").as_int64() == 300000);
  BOOST_TEST(policy.at("retry").at("multiplier").to_number<double>() == 3.0);
  BOOST_TEST(policy.at("retry").at("jitter").to_number<double>() == 0.0);
  BOOST_TEST(policy.at("max_attempts").to_number<std::int64_t>() == 5);
  BOOST_TEST(corvo({"schedule", "cancel", "policy"}).exit_code == 0);
  // Pause and resume a type, and the namespace.
  r = corvo({"schedule", "pause", "--type", "email.timeout"});
  BOOST_TEST(r.out == "paused type email.timeout\n", r.err);
  BOOST_TEST(corvo({"schedule", "pause"}).out == "paused namespace\n");
  auto paused = corvo.json_of({"schedule", "paused"}).as_object();
  BOOST_TEST(paused.at("namespace").as_bool());
  BOOST_TEST(paused.at("types").as_array().size() == 1u);
  BOOST_TEST(paused.at("types").as_array()[0].as_string() == "email.timeout");
  BOOST_TEST(corvo({"schedule", "resume", "--type", "email.timeout"}).out ==
             "resumed type email.timeout\n");
  BOOST_TEST(corvo({"schedule", "resume"}).out == "resumed namespace\n");
  BOOST_TEST(corvo({"schedule", "paused"}).out == "namespace running\n");
  r = corvo({"schedule", "add", "--id", "daily", "--type", "report", "--in", "10m", "--cron",
             "0 9 * * MON-FRI", "--tz", "Europe/Berlin"});
  BOOST_TEST(r.exit_code == 0, r.err);

  const auto got = corvo.json_of({"schedule", "get", "order-42"}).as_object();
  BOOST_TEST(got.at("type").as_string() == "email.timeout");
  BOOST_TEST(got.at("state").as_string() == "scheduled");
  BOOST_TEST(got.at("max_attempts").as_int64() == 3);
  BOOST_TEST(got.at("payload").as_object().at("order").as_int64() == 42);

  const auto listed = corvo.json_of({"schedule", "list"}).as_array();
  BOOST_REQUIRE(listed.size() == 2u);
  BOOST_TEST(listed[0].as_object().at("id").as_string() == "daily");  // due order
  // The zone is stored with the task and read back.
  BOOST_TEST(listed[0].as_object().at("recurrence").as_string() ==
             "cron TZ=Europe/Berlin 0 9 * * MON-FRI");

  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("scheduled").as_int64() == 2);
  BOOST_TEST(corvo({"schedule", "cancel", "order-42"}).exit_code == 0);
  r = corvo({"schedule", "get", "order-42"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("no task 'order-42'") != std::string::npos);

  // A task in the dead-letter set: listed with its reason, replayed, purged.
  {
    corvo::test::run_command_checked({corvo::test::corvo_program().string(), "schedule", "add",
                                      "--id", "doomed", "--type", "t", "--at", "1000000", "--redis",
                                      server.url(), "--namespace", "cli", "--shards", "4"});
    asio::io_context ctx;
    redis::client conn(ctx.get_executor(), redis::client_config::from_url(server.url()));
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
    redis_store s(conn, redis::client_config::from_url(server.url()),
                  {.name_space = "cli", .shards = 4});
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
  auto r =
      corvo({"schedule", "add", "--id", "x", "--type", "t", "--payload", "{oops", "--in", "1s"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--payload is not JSON") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--cron", "61 * * * *"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("minute field") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--priority", "urgent"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("not one of low, normal, high") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--retry-jitter", "2"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("jitter in [0, 1]") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--cron", "0 9 * * *",
             "--tz", "Europe/Berlinn"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("unknown time zone 'Europe/Berlinn'") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--tz", "UTC"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--tz applies to --cron only") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "soon"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("must be a duration") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("exactly one of --at and --in") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--dedup-drop"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--dedup-drop needs --dedup-window") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--dedup-key", "k"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--dedup-key needs --dedup-window") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--dedup-key", "",
             "--dedup-window", "1m"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("--dedup-key is empty") != std::string::npos, r.err);
  r = corvo({"schedule", "add", "--id", "x", "--type", "t", "--in", "1s", "--dedup-window", "1m",
             "--if-absent"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("at most one of --if-absent and --dedup-window") != std::string::npos,
             r.err);
  r = corvo({"schedule", "frobnicate"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("scheduled").as_int64() ==
             0);  // nothing added
}

namespace {

using clock_type = std::chrono::steady_clock;

// Every verb of the CLI that talks to Redis, with the arguments it needs.
const std::vector<std::vector<std::string>> verbs_that_talk_to_redis = {
    {"schedule", "add", "--id", "x", "--type", "t", "--in", "1h"},
    {"schedule", "get", "x"},
    {"schedule", "list"},
    {"schedule", "cancel", "x"},
    {"dead", "list"},
    {"dead", "replay", "x"},
    {"dead", "purge"},
    {"stats"},
};

corvo::test::command_result run_corvo(
    std::vector<std::string> words, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  words.insert(words.begin(), corvo::test::corvo_program().string());
  return corvo::test::run_command(words, timeout);
}

asio::awaitable<void> get_task(redis_store& s, std::string id, std::optional<task>& out) {
  out = co_await s.get(std::move(id));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// Nothing listens on the port: every command fails at once, naming the address and the error.
BOOST_AUTO_TEST_CASE(every_command_fails_fast_on_a_refused_address) {
  const auto port = std::to_string(corvo::test::free_port());
  const std::string address = "127.0.0.1:" + port;
  for (auto words : verbs_that_talk_to_redis) {
    words.insert(words.end(),
                 {"--redis", "redis://" + address, "--shards", "4", "--connect-timeout", "2s"});
    const auto started = clock_type::now();
    const auto r = run_corvo(words, std::chrono::seconds(10));
    const auto took = clock_type::now() - started;
    BOOST_TEST_CONTEXT(words[0] << " " << words[1]) {
      BOOST_TEST(!r.timed_out);
      BOOST_TEST(r.exit_code == 1, r.err);
      BOOST_TEST(contains(r.err, address), r.err);
      BOOST_TEST(contains(r.err, "Connection refused"), r.err);
      BOOST_TEST((took < std::chrono::seconds(2)));  // refused: no need to wait the timeout
    }
  }
}

// A port that accepts TCP connections but never answers (not a Redis server, or a hung one):
// every command gives up after --connect-timeout, and the default is a few seconds.
BOOST_AUTO_TEST_CASE(every_command_gives_up_after_the_connect_timeout) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor silent(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  silent.listen();  // the kernel completes handshakes into the backlog; nobody reads
  const std::string address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  for (auto words : verbs_that_talk_to_redis) {
    words.insert(words.end(),
                 {"--redis", "redis://" + address, "--shards", "4", "--connect-timeout", "400ms"});
    const auto started = clock_type::now();
    const auto r = run_corvo(words, std::chrono::seconds(10));
    const auto took = clock_type::now() - started;
    BOOST_TEST_CONTEXT(words[0] << " " << words[1]) {
      BOOST_TEST(!r.timed_out);
      BOOST_TEST(r.exit_code == 1, r.err);
      BOOST_TEST(contains(r.err, address), r.err);
      BOOST_TEST(contains(r.err, "no answer within 400ms"), r.err);
      BOOST_TEST((took >= std::chrono::milliseconds(400)));
      BOOST_TEST((took < std::chrono::milliseconds(2400)));
    }
  }
  const auto started = clock_type::now();
  const auto r = run_corvo({"stats", "--redis", "redis://" + address, "--shards", "4"});
  const auto took = clock_type::now() - started;
  BOOST_TEST(r.exit_code == 1, r.err);
  BOOST_TEST(contains(r.err, "no answer within 3000ms"), r.err);
  BOOST_TEST((took >= std::chrono::seconds(3)));
  BOOST_TEST((took < std::chrono::seconds(5)));
}

// --help needs no server, on every subcommand, whatever else is on the line.
BOOST_AUTO_TEST_CASE(help_works_on_every_subcommand_without_a_server) {
  const std::string nowhere = "redis://127.0.0.1:" + std::to_string(corvo::test::free_port());
  std::vector<std::vector<std::string>> helps = {
      {"--help"}, {"schedule", "--help"}, {"dead", "--help"}, {"kafka", "--help"}};
  for (auto words : verbs_that_talk_to_redis) {
    words.resize(words[0] == "stats" ? 1 : 2);  // the verb alone: required options missing
    words.push_back("--help");
    helps.push_back(words);
  }
  helps.push_back({"schedule", "add", "--id", "x", "--help", "--redis", nowhere});
  for (const auto& words : helps) {
    const auto r = run_corvo(words, std::chrono::seconds(5));
    BOOST_TEST_CONTEXT(words[0] << (words.size() > 1 ? " " + words[1] : "")) {
      BOOST_TEST(!r.timed_out);
      BOOST_TEST(r.exit_code == 0, r.err);
      BOOST_TEST(contains(r.out, "usage"), r.out);
      BOOST_TEST(r.err.empty(), r.err);
    }
  }
  // A subcommand's help shows its own options.
  BOOST_TEST(contains(run_corvo({"schedule", "add", "--help"}).out, "--max-attempts"));
  BOOST_TEST(contains(run_corvo({"stats", "--help"}).out, "--connect-timeout"));
}

// --at takes an ISO 8601 time with Z or a UTC offset, and the stored due time is that instant.
BOOST_AUTO_TEST_CASE(at_honours_the_utc_offset) {
  corvo::test::redis_server server;
  const cli corvo{server.url()};
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"2030-01-01T12:00:00+02:00", "2030-01-01T10:00:00.000000Z"},
      {"2030-01-01T12:00:00-05:30", "2030-01-01T17:30:00.000000Z"},
      {"2030-01-01T12:00:00Z", "2030-01-01T12:00:00.000000Z"},
      {"2030-01-01T12:00:00.250+01:00", "2030-01-01T11:00:00.250000Z"},
      {"2030-01-01T00:30:00+0100", "2029-12-31T23:30:00.000000Z"},
  };
  int n = 0;
  for (const auto& [at, stored] : cases) {
    const auto id = "at-" + std::to_string(n++);
    const auto r = corvo({"schedule", "add", "--id", id, "--type", "t", "--at", at});
    BOOST_TEST_CONTEXT(at) {
      BOOST_TEST(r.exit_code == 0, r.err);
      const auto got = corvo.json_of({"schedule", "get", id}).as_object();
      BOOST_TEST(got.at("due").as_string() == stored);
    }
  }
  // A time without a zone is ambiguous, and trailing text is not ignored.
  for (const std::string bad : {"2030-01-01T12:00:00", "2030-01-01T12:00:00+02:00junk",
                                "2030-01-01T12:00:00+25:00", "2030-01-01 12:00"}) {
    const auto r = corvo({"schedule", "add", "--id", "bad", "--type", "t", "--at", bad});
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(r.exit_code == 1);
      BOOST_TEST(contains(r.err, "--at '" + bad + "'"), r.err);
    }
  }
  BOOST_TEST(corvo({"schedule", "get", "bad"}).exit_code == 1);
}

// --config reads the application's own file: the CLI writes where the application's
// dispatchers claim (same Redis, namespace and shard count).
BOOST_AUTO_TEST_CASE(config_file_gives_redis_namespace_and_shards) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("cli-config");
  const auto file = dir.path() / "app.json";
  std::ofstream(file) << R"({ "redis": {"url": ")" << server.url() << R"("},
      "scheduler": {"provider": "redis", "namespace": "billing", "shards": 3,
                    "types": {"invoice": {"max_attempts": 9}}},
      "billing": {"currency": "EUR"} })";
  const auto r = run_corvo({"schedule", "add", "--config", file.string(), "--id", "inv-7", "--type",
                            "invoice", "--in", "1h"});
  BOOST_TEST(r.exit_code == 0, r.err);
  // The application's store (its namespace and shard count) sees the task.
  asio::io_context ctx;
  redis::client conn(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  redis_store app(conn, redis::client_config::from_url(server.url()),
                  {.name_space = "billing", .shards = 3});
  std::optional<task> seen;
  corvo::test::run(ctx, get_task(app, "inv-7", seen), [&] { conn.cancel(); });
  BOOST_REQUIRE(seen.has_value());
  BOOST_TEST(seen->type == "invoice");
  BOOST_TEST(seen->max_attempts == 9u);  // no --max-attempts: the type's, from the file
  // Due in an hour: in the shard's compact tier (its index names the task's bucket).
  const auto tasks_key = app.keys_of(app.shard_of("inv-7"))[1];
  const auto index_key = tasks_key.substr(0, tasks_key.size() - 5) + "compact:index";
  BOOST_TEST(server.cli("ZCARD", index_key) == "1");
  // The file's errors are the application's errors: an unknown key is named.
  std::ofstream(file) << R"({"redis": {"url": ")" << server.url()
                      << R"("}, "scheduler": {"provider": "redis", "shard": 3}})";
  const auto bad = run_corvo({"stats", "--config", file.string()});
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(contains(bad.err, "scheduler.shard"), bad.err);
  BOOST_TEST(contains(bad.err, "shards"), bad.err);
}

// Without --config the shard count is not guessed: a CLI that assumed 16 would write to
// shards the application's dispatchers (with, say, 3) never claim.
BOOST_AUTO_TEST_CASE(shards_are_not_guessed) {
  corvo::test::redis_server server;
  const auto r = run_corvo(
      {"schedule", "add", "--redis", server.url(), "--id", "x", "--type", "t", "--in", "1h"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.err, "--shards"), r.err);
  BOOST_TEST(contains(r.err, "--config"), r.err);
  BOOST_TEST(server.cli("DBSIZE") == "0");
}

// Deduplication by key from several processes at once: 6 `corvo schedule add` with one key
// and distinct ids, started together; one opened the window, each other replaced a distinct
// pending task, and one task is left.
BOOST_AUTO_TEST_CASE(dedup_key_from_several_processes_leaves_one_task) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("cli-dedup");
  constexpr int processes = 6;
  std::vector<corvo::test::child_process> children;
  for (int i = 0; i < processes; ++i) {
    std::vector<std::string> argv{corvo::test::corvo_program().string(), "schedule", "add"};
    for (const auto& word :
         {"--id", "", "--type", "index", "--in", "1h", "--dedup-key", "burst", "--dedup-window",
          "1m", "--json", "--namespace", "cli", "--shards", "4", "--redis"}) {
      argv.emplace_back(word);
    }
    argv[4] = "burst-" + std::to_string(i);
    argv.push_back(server.url());
    children.emplace_back(argv, dir.path(), dir.path() / ("out-" + std::to_string(i)));
  }
  int opened = 0;
  std::set<std::string> pending;
  for (int i = 0; i < processes; ++i) {
    const auto status = children[i].wait();
    BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::ifstream in(dir.path() / ("out-" + std::to_string(i)));
    std::string line;
    std::getline(in, line);
    const auto out = json::parse(line).as_object();
    if (out.contains("scheduled")) {
      ++opened;
    } else {
      BOOST_TEST(out.at("replaced").as_string() == "burst-" + std::to_string(i));
      BOOST_TEST(pending.insert(std::string(out.at("pending").as_string())).second);
    }
  }
  BOOST_TEST(opened == 1);
  BOOST_TEST(pending.size() == processes - 1u);
  const cli corvo{server.url()};
  BOOST_TEST(corvo.json_of({"stats"}).as_object().at("scheduled").as_int64() == 1);
}
