#pragma once
// The scenario of coupon_issue_{sqlite,postgresql}_test (one executable per database, so
// CTest runs them side by side), once per queue mode: samples/coupon_issue run as a user
// would, as separate processes (an API process, which also hosts the embedded Kafka, and a
// processor), over real HTTP. A concurrent client (128 connections) sends the plan's
// requests (users asking for 10 coupons with 100 in stock, every 10th user twice, plus
// requests that fail validation or business rules): the issue's 10,000 requests in each
// queue mode against each database; a malformed message is put straight on the queue. The
// first processor kills itself (SIGKILL) after committing its 5th batch and before
// acknowledging it; a second one is started and finishes. Then, from the database itself:
// every accepted request has exactly one outcome, the outcomes are exactly those of
// deciding each coupon's requests in arrival order (stock never exceeded, no user twice,
// first come first served), exactly the stock was issued, the malformed message got
// SYSTEM_ERROR; the second processor recognised requests delivered again after the kill
// (decided, committed, not acknowledged) instead of deciding them twice; the status API
// answers each request's stored outcome.
#include <sys/wait.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/kafka/producer.hpp>
#include <db/database.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "checks.hpp"
#include "load_client.hpp"
#include "support/child_process.hpp"
#include "support/postgres_server.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace coupon_issue_scenario {

namespace asio = boost::asio;
namespace json = boost::json;
namespace db = corvo::samples::db;
using namespace std::chrono_literals;

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The first match of `pattern`'s group 1 in the program's log, waiting for it.
inline std::string wait_for_line(corvo::test::child_process& program,
                                 const std::filesystem::path& log, const std::string& pattern) {
  const std::regex re(pattern);
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    std::smatch match;
    const auto text = read_file(log);
    if (std::regex_search(text, match, re)) {
      return match[1];
    }
    BOOST_REQUIRE_MESSAGE(program.running(), "coupon_issue exited:\n" << text);
    std::this_thread::sleep_for(20ms);
  }
  BOOST_FAIL("no \"" << pattern << "\" from coupon_issue:\n" << read_file(log));
  return {};
}

inline void expect_clean_exit(corvo::test::child_process& program,
                              const std::filesystem::path& log) {
  program.kill(SIGTERM);
  const auto status = program.wait_for(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "coupon_issue did not stop on SIGTERM");
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0),
             "exit status " << *status << "\n"
                            << corvo::test::tail_of_file(log, 40));
}

// The malformed message: a request id, but a coupon that is not a string.
inline std::string malformed_message(const std::string& id) {
  return R"({"id":")" + id + R"(","coupon":{"oops":1},"user":"5","seq":0,"at":0})";
}

inline asio::awaitable<void> inject_into_kafka(std::string bootstrap, std::string message) {
  auto executor = co_await asio::this_coro::executor;
  corvo::kafka::client_config config(bootstrap);
  corvo::kafka::producer producer(executor, config);
  const std::string key = "1";
  co_await producer.send("coupon-requests", key, message);
  co_await producer.close(5s);
}

// `users` users make users × 1.12 requests (every 10th user twice, 4 invalid or failing
// requests per 200 users): 2,000 users 2,240 requests, 8,931 users 10,000.
inline void run_scenario(const std::string& database_url, const std::string& queue,
                         std::size_t users) {
  corvo::test::redis_server redis;
  corvo::test::temp_dir dir("coupon-issue-" + queue);
  coupon_issue::plan_options options;
  options.users = users;
  options.stock = 100;
  options.coupons = 10;
  const auto plan = coupon_issue::make_plan(options);
  const std::vector<std::string> common{
      "--redis", redis.url(), "--database", database_url,
      "--queue", queue,       "--coupons",  coupon_issue::coupons_text(plan.coupons)};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), CORVO_COUPON_ISSUE_PATH);
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  const auto api_log = dir.path() / "api.log";
  corvo::test::child_process api(
      with({"--role", "api", "--listen", "127.0.0.1:0", "--kafka", "embedded:1"}), dir.path(),
      api_log);
  const auto port = static_cast<unsigned short>(
      std::stoi(wait_for_line(api, api_log, R"(listening on 127\.0\.0\.1:(\d+))")));
  std::string kafka = "unused";
  if (queue == "kafka") {
    kafka = wait_for_line(api, api_log, R"(embedded Kafka at (\S+))");
  }
  // The first processor commits small batches and kills itself after the 5th.
  const auto first_log = dir.path() / "processor-1.log";
  ::setenv("CORVO_COUPON_ISSUE__WRITE_BATCH", "50", 1);
  corvo::test::child_process first(
      with({"--role", "processor", "--kafka", kafka, "--crash-after", "5"}), dir.path(), first_log);
  ::unsetenv("CORVO_COUPON_ISSUE__WRITE_BATCH");

  asio::io_context context;
  coupon_issue::issue_load load;
  const std::string malformed_id = "malformed-" + queue;
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    load = co_await coupon_issue::fire(port, plan.calls, 128);
  }());
  BOOST_TEST_MESSAGE(queue << ": " << plan.calls.size() << " requests in " << load.seconds << " s");
  if (users == 8931) {
    BOOST_TEST(plan.calls.size() == 10000u);  // the issue's size
  }
  if (queue == "redis") {
    redis.cli("LPUSH", "coupon-requests", malformed_message(malformed_id));
  } else {
    corvo::test::run(context, inject_into_kafka(kafka, malformed_message(malformed_id)));
  }

  // The kill came after 5 commits, before their acknowledgement.
  const auto crashed = first.wait_for(60s);
  BOOST_REQUIRE_MESSAGE(crashed.has_value(), "the first processor did not crash:\n"
                                                 << corvo::test::tail_of_file(first_log, 40));
  BOOST_REQUIRE_MESSAGE(WIFSIGNALED(*crashed) && WTERMSIG(*crashed) == SIGKILL,
                        "status " << *crashed << "\n"
                                  << corvo::test::tail_of_file(first_log, 40));
  BOOST_TEST(read_file(first_log).find("crashing on purpose") != std::string::npos);

  const auto second_log = dir.path() / "processor-2.log";
  corvo::test::child_process second(with({"--role", "processor", "--kafka", kafka}), dir.path(),
                                    second_log);
  db::database database({.url = database_url});
  const auto want = static_cast<std::int64_t>(plan.calls.size()) + 1;  // + the malformed one
  std::int64_t decided = 0;
  const auto until = std::chrono::steady_clock::now() + 90s;
  while (decided < want) {
    decided = corvo::test::run(context, coupon_issue::decided_count(database));
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                          decided << " of " << want << " decided:\n"
                                  << corvo::test::tail_of_file(second_log, 40));
    if (decided < want) {
      std::this_thread::sleep_for(50ms);
    }
  }

  const std::set<std::string> extra{malformed_id};
  const auto verdict = corvo::test::run(context, coupon_issue::verify(database, plan, load, extra));
  for (const auto& [held, what] : verdict.checks) {
    BOOST_TEST(held, what);
  }
  BOOST_TEST(verdict.outcomes.at("SYSTEM_ERROR") == 1);
  for (const auto* name :
       {"SUCCESS", "VALIDATION_FAILED", "DUPLICATE_REQUEST", "OUT_OF_STOCK", "BUSINESS_ERROR"}) {
    BOOST_TEST(verdict.outcomes.at(name) > 0, name);
  }

  // The status API answers what is stored; a coupon's stock is used up.
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    for (std::size_t i = 0; i < plan.calls.size(); i += 97) {
      const auto& id = load.replies[i].request_id;
      auto [status, body] =
          co_await coupon_issue::http_call(port, "GET", "/api/coupons/requests/" + id);
      BOOST_TEST(status == 200);
      db::row params{id};
      auto stored = co_await database.query(
          "SELECT outcome FROM coupon_request WHERE request_id = $1", std::move(params));
      BOOST_TEST(json::parse(body).at("status").as_string() ==
                 std::get<std::string>(stored.rows.at(0).at(0)));
    }
    auto [status, body] =
        co_await coupon_issue::http_call(port, "GET", "/api/coupons/requests/" + malformed_id);
    BOOST_TEST(json::parse(body).at("status").as_string() == "SYSTEM_ERROR");
    auto [coupon_status, coupon] = co_await coupon_issue::http_call(port, "GET", "/api/coupons/1");
    BOOST_TEST(coupon_status == 200);
    BOOST_TEST(json::parse(coupon).at("remaining").to_number<std::int64_t>() == 0);
  }());

  expect_clean_exit(second, second_log);
  // Requests decided and committed before the kill came again and were recognised.
  static const std::regex recognised(R"(recognised (\d+))");
  std::smatch match;
  const auto text = read_file(second_log);
  BOOST_REQUIRE_MESSAGE(std::regex_search(text, match, recognised), text);
  BOOST_TEST(std::stoi(match[1]) > 0, "recognised " << match[1]);
  expect_clean_exit(api, api_log);
}

}  // namespace coupon_issue_scenario
