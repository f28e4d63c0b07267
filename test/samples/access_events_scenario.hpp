#pragma once
// The scenario of access_events_{sqlite,postgresql}_test (one executable per backend, so
// CTest runs them side by side): samples/access_events run as a user would (its own process, real
// HTTP), against SQLite and a throwaway PostgreSQL: 10,000 requests from a concurrent client in
// three phases, with redis-server (AOF, appendfsync always) killed after the first and restarted
// after the second. Proves: no request fails during the outage; the consumer is stopped while Redis
// is down and runs again after; every request's event is stored exactly once (none lost,
// none doubled, nothing dropped); the summary API matches the requests made.
#include <sys/wait.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <db/database.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "access_log.hpp"
#include "load_client.hpp"
#include "support/child_process.hpp"
#include "support/postgres_server.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace db = corvo::samples::db;
using namespace std::chrono_literals;

namespace access_events_scenario {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The program's HTTP port, from its "listening on 127.0.0.1:PORT" line.
inline unsigned short wait_for_port(corvo::test::child_process& program,
                                    const std::filesystem::path& log) {
  static const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+))");
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    std::smatch match;
    const auto text = read_file(log);
    if (std::regex_search(text, match, listening)) {
      return static_cast<unsigned short>(std::stoi(match[1]));
    }
    BOOST_REQUIRE_MESSAGE(program.running(), "access_events exited:\n" << text);
    std::this_thread::sleep_for(20ms);
  }
  BOOST_FAIL("access_events did not start:\n" << read_file(log));
  return 0;
}

inline asio::awaitable<json::object> stats(unsigned short port) {
  auto [status, body] = co_await access_events::http_get(port, "/admin/api/v1/event/access/stats");
  BOOST_REQUIRE_EQUAL(status, 200);
  co_return json::parse(body).as_object();
}

inline std::int64_t number(const json::object& o, std::string_view key) {
  return o.at(key).to_number<std::int64_t>();
}

inline void add(access_events::load_result& total, const access_events::load_result& part) {
  total.sent += part.sent;
  total.failed += part.failed;
  for (const auto& [day, counts] : part.per_day) {
    for (const auto& [category, n] : counts) {
      total.per_day[day][category] += n;
    }
  }
}

inline void run_scenario(const std::string& database_url) {
  corvo::test::redis_server_options redis_options;
  redis_options.append_only = true;
  redis_options.extra_config = {"appendfsync always"};
  corvo::test::redis_server redis(redis_options);
  corvo::test::temp_dir dir("access-events");
  const auto log = dir.path() / "access_events.log";
  corvo::test::child_process program({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(),
                                      "--database", database_url, "--listen", "127.0.0.1:0"},
                                     dir.path(), log);
  const auto port = wait_for_port(program, log);

  asio::io_context context;
  access_events::load_result total;
  json::object after;
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    // Phase 1: Redis up, the consumer running (the kill below must find it running, however
    // fast the load is).
    for (const auto until = std::chrono::steady_clock::now() + 30s;;) {
      const auto ready = co_await stats(port);
      if (ready.at("consumer").at("state").as_string() == "running") {
        break;
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "the consumer did not start: " << json::serialize(ready));
      co_await corvo::sleep_for(5ms);
    }
    auto first = co_await access_events::run_load(port, 4000, 32, 0);
    add(total, first);
    BOOST_TEST_MESSAGE("phase 1: " << first.sent << " requests in " << first.seconds << " s");

    // Redis dies: the consumer is stopped (the monitor saw it), requests keep succeeding.
    redis.kill();
    json::object during;
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      during = co_await stats(port);
      const auto& consumer = during.at("consumer").as_object();
      if (number(consumer, "stops") >= 1 && consumer.at("state").as_string() != "running") {
        break;
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "the consumer was not stopped: " << json::serialize(during));
      co_await corvo::sleep_for(20ms);
    }
    BOOST_TEST_MESSAGE("consumer stopped");
    auto second = co_await access_events::run_load(port, 3000, 32, 4000);
    add(total, second);
    BOOST_TEST_MESSAGE("phase 2 (Redis down): " << second.sent << " requests in " << second.seconds
                                                << " s");
    BOOST_TEST(second.failed == 0u);  // the outage fails no request

    // Redis is back (its AOF has every appended event): the consumer runs again.
    redis.restart();
    auto third = co_await access_events::run_load(port, 3000, 32, 7000);
    add(total, third);
    BOOST_TEST_MESSAGE("phase 3: " << third.sent << " requests in " << third.seconds << " s");

    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      after = co_await stats(port);
      if (number(after, "stored") >= 10000 && number(after, "buffered") == 0) {
        break;
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                            "not every event was stored: " << json::serialize(after));
      co_await corvo::sleep_for(20ms);
    }

    BOOST_TEST_MESSAGE("all stored: " << json::serialize(after));
    // The summary API matches what the client sent, per day and category.
    for (const auto& [day, sent] : total.per_day) {
      auto [status, body] =
          co_await access_events::http_get(port, "/admin/api/v1/event/access/summary/" + day);
      BOOST_REQUIRE_EQUAL(status, 200);
      const auto summary = json::parse(body).at("categories").as_object();
      for (const auto& category : access_events::categories()) {
        const auto want = sent.contains(category) ? sent.at(category) : 0;
        BOOST_TEST_CONTEXT(day << " " << category) {
          BOOST_TEST(summary.at(category).to_number<std::int64_t>() == want);
        }
      }
    }
  }());

  BOOST_TEST(total.sent == 10000u);
  BOOST_TEST(total.failed == 0u);
  BOOST_TEST(number(after, "stored") == 10000);
  BOOST_TEST(number(after, "dropped") == 0);
  const auto& consumer = after.at("consumer").as_object();
  BOOST_TEST(number(consumer, "stops") >= 1);
  BOOST_TEST(number(consumer, "starts") >= 2);
  BOOST_TEST(consumer.at("state").as_string() == "running");

  // Exactly once, read from the database itself: 10,000 rows, 10,000 distinct requests (the
  // test's own summary requests are access events too: not counted).
  db::database store({.url = database_url});
  auto rows = corvo::test::run(
      context, store.query("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM access_event WHERE "
                           "path NOT LIKE '/admin/api/v1/event/access/summary/%'"));
  BOOST_TEST(std::get<std::int64_t>(rows.rows.at(0).at(0)) == 10000);
  BOOST_TEST(std::get<std::int64_t>(rows.rows.at(0).at(1)) == 10000);

  program.kill(SIGTERM);
  const auto status = program.wait_for(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "access_events did not stop on SIGTERM");
  BOOST_TEST(WIFEXITED(*status));
  BOOST_TEST(WEXITSTATUS(*status) == 0, "exit status " << WEXITSTATUS(*status) << "\n"
                                                       << corvo::test::tail_of_file(log, 40));
}

}  // namespace access_events_scenario
