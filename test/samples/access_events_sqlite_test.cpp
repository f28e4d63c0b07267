// samples/access_events against SQLite: see access_events_scenario.hpp.
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>

#include "access_events_scenario.hpp"
#include "support/eventually.hpp"

BOOST_AUTO_TEST_SUITE(access_events_sample)

BOOST_AUTO_TEST_CASE(every_event_stored_once_across_a_redis_restart_sqlite) {
  corvo::test::temp_dir dir("access-events-db");
  access_events_scenario::run_scenario("sqlite:" + (dir.path() / "events.db").string());
}

// The retention job, on a short schedule, with two processes sharing Redis and the database:
// rows older than max_age are deleted by the scheduler's recurring task (here every row:
// max_age 1 ms), each run (due time) is claimed by exactly one of the two processes (the
// scheduler's Redis store), and both keep serving.
BOOST_AUTO_TEST_CASE(the_retention_job_deletes_old_rows_once_per_run_across_processes) {
  using namespace access_events_scenario;
  corvo::test::redis_server redis;
  corvo::test::temp_dir dir("access-events-retention");
  const std::string database_url = "sqlite:" + (dir.path() / "events.db").string();
  const auto log = dir.path() / "access_events.log";
  const auto other_log = dir.path() / "access_events-2.log";
  // Configuration overrides through the environment, as an operator would set them.
  ::setenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE", "every 1s", 1);
  ::setenv("CORVO_ACCESS_EVENTS__RETENTION__MAX_AGE", "1ms", 1);
  corvo::test::child_process program({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(),
                                      "--database", database_url, "--listen", "127.0.0.1:0"},
                                     dir.path(), log);
  corvo::test::child_process other({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(), "--database",
                                    database_url, "--listen", "127.0.0.1:0"},
                                   dir.path(), other_log);
  ::unsetenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE");
  ::unsetenv("CORVO_ACCESS_EVENTS__RETENTION__MAX_AGE");
  const auto port = wait_for_port(program, log);
  const auto other_port = wait_for_port(other, other_log);

  // The due times of the runs in both logs (each line: "... (run due <ms>)").
  auto runs = [&] {
    static const std::regex due(R"(retention: deleted \d+ rows older than \S+ \(run due (\d+)\))");
    std::vector<std::string> all;
    for (const auto& path : {log, other_log}) {
      const auto text = read_file(path);
      for (std::sregex_iterator it(text.begin(), text.end(), due), end; it != end; ++it) {
        all.push_back((*it)[1]);
      }
    }
    return all;
  };

  asio::io_context context;
  db::database store({.url = database_url});
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    auto load = co_await access_events::run_load(port, 200, 8, 0);
    BOOST_TEST(load.failed == 0u);
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      // The two processes share the consumer group: each stores what it read.
      const auto now = co_await stats(port);
      const auto other_now = co_await stats(other_port);
      if (number(now, "stored") + number(other_now, "stored") == 200) {
        break;
      }
      BOOST_REQUIRE_MESSAGE(
          std::chrono::steady_clock::now() < until,
          "not stored: " << json::serialize(now) << " " << json::serialize(other_now));
      co_await corvo::sleep_for(20ms);
    }
    // Every stored row is older than 1 ms by now: the next run deletes them all.
    for (;;) {
      auto rows = co_await store.query("SELECT COUNT(*) FROM access_event");
      if (std::get<std::int64_t>(rows.rows.at(0).at(0)) == 0) {
        break;
      }
      BOOST_REQUIRE_MESSAGE(
          std::chrono::steady_clock::now() < until,
          "rows were not deleted: " << std::get<std::int64_t>(rows.rows.at(0).at(0)) << " left");
      co_await corvo::sleep_for(50ms);
    }
    // A few more runs, then: no due time ran twice (in one process or in both).
    while (runs().size() < 4) {
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "only " << runs().size() << " retention runs");
      co_await corvo::sleep_for(50ms);
    }
  }());
  // One series of due times, 1 s apart: with a store per process (the memory store) there
  // would be two interleaved series, and two runs less than 0.5 s apart.
  std::vector<std::int64_t> due;
  for (const auto& text : runs()) {
    due.push_back(std::stoll(text));
  }
  std::sort(due.begin(), due.end());
  for (std::size_t i = 1; i < due.size(); ++i) {
    BOOST_TEST(due[i] - due[i - 1] >= 900, "runs due at " << due[i - 1] << " and " << due[i]);
  }
  for (auto* p : {&program, &other}) {
    p->kill(SIGTERM);
    const auto status = p->wait_for(30s);
    BOOST_REQUIRE(status.has_value());
    BOOST_TEST(WEXITSTATUS(*status) == 0);
  }
}

// The middleware's buffer while Redis is down: it holds `limit` events, drops and counts
// every one beyond (record() never waits), and once Redis is back appends exactly the ones
// it held, in the order they were recorded.
BOOST_AUTO_TEST_CASE(the_event_buffer_holds_its_limit_during_an_outage_and_counts_the_rest) {
  corvo::test::redis_server redis;
  asio::io_context ctx;
  corvo::redis::client client(ctx.get_executor(),
                              corvo::redis::client_config::from_url(redis.url()));
  access_events::event_buffer_options o;
  o.stream = "outage-events";
  o.limit = 100;
  o.batch = 32;
  o.retry = {std::chrono::milliseconds{5}, std::chrono::milliseconds{20}};
  access_events::event_buffer buffer(client, o);
  asio::cancellation_signal stop_client, stop_buffer;
  asio::co_spawn(ctx, client.run(),
                 asio::bind_cancellation_slot(stop_client.slot(), asio::detached));
  asio::co_spawn(ctx, buffer.run(),
                 asio::bind_cancellation_slot(stop_buffer.slot(), asio::detached));
  const auto scenario = [&]() -> asio::awaitable<void> {
    corvo::redis::request ping;
    ping.push("PING");
    co_await client.exec(ping);  // connected
    redis.kill();
    for (int i = 0; i < 250; ++i) {
      access_events::access_event e;
      e.event_id = "outage-" + std::to_string(i);
      e.category = "api";
      e.method = "GET";
      e.path = "/api/orders/" + std::to_string(i);
      e.status = 200;
      e.at_ms = 1'700'000'000'000 + i;
      buffer.record(std::move(e));
    }
    BOOST_TEST(buffer.stats().recorded == 250u);
    BOOST_TEST(buffer.stats().dropped == 150u);
    BOOST_TEST(buffer.buffered() == 100u);
    redis.start();
    BOOST_REQUIRE(
        co_await corvo::test::eventually([&] { return buffer.stats().appended == 100u; }, 30s));
    BOOST_TEST(buffer.buffered() == 0u);
  };
  corvo::test::run(ctx, scenario(), [&] {
    stop_buffer.emit(asio::cancellation_type::terminal);
    stop_client.emit(asio::cancellation_type::terminal);
  });
  // Exactly the first 100, once each, in order (the stream has no other writer).
  const auto ids = redis.cli("XRANGE", "outage-events", "-", "+");
  std::size_t at = 0;
  for (int i = 0; i < 100; ++i) {
    const std::string want = "outage-" + std::to_string(i) + "\n";
    const auto found = ids.find(want, at);
    BOOST_TEST_REQUIRE(found != std::string::npos, want << " missing or out of order");
    at = found + want.size();
  }
  BOOST_TEST(ids.find("outage-100\n") == std::string::npos);
  BOOST_TEST(redis.cli("XLEN", "outage-events") == "100");
}

BOOST_AUTO_TEST_SUITE_END()
