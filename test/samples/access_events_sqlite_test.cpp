// samples/access_events against SQLite: see access_events_scenario.hpp.
#include <stdlib.h>
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>

#include "access_events_scenario.hpp"

BOOST_AUTO_TEST_SUITE(access_events_sample)

BOOST_AUTO_TEST_CASE(every_event_stored_once_across_a_redis_restart_sqlite) {
  corvo::test::temp_dir dir("access-events-db");
  access_events_scenario::run_scenario("sqlite:" + (dir.path() / "events.db").string());
}

// The retention job, on a short schedule: rows older than max_age are deleted by the
// scheduler's recurring task (here every row: max_age 1 ms), and the program keeps serving.
BOOST_AUTO_TEST_CASE(the_retention_job_deletes_old_rows) {
  using namespace access_events_scenario;
  corvo::test::redis_server redis;
  corvo::test::temp_dir dir("access-events-retention");
  const std::string database_url = "sqlite:" + (dir.path() / "events.db").string();
  const auto log = dir.path() / "access_events.log";
  // Configuration overrides through the environment, as an operator would set them.
  ::setenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE", "every 1s", 1);
  ::setenv("CORVO_ACCESS_EVENTS__RETENTION__MAX_AGE", "1ms", 1);
  corvo::test::child_process program({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(),
                                      "--database", database_url, "--listen", "127.0.0.1:0"},
                                     dir.path(), log);
  ::unsetenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE");
  ::unsetenv("CORVO_ACCESS_EVENTS__RETENTION__MAX_AGE");
  const auto port = wait_for_port(program, log);

  asio::io_context context;
  db::database store({.url = database_url});
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    auto load = co_await access_events::run_load(port, 200, 8, 0);
    BOOST_TEST(load.failed == 0u);
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      const auto now = co_await stats(port);
      if (number(now, "stored") == 200) {
        break;
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "not stored: " << json::serialize(now));
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
  }());
  BOOST_TEST(read_file(log).find("retention: deleted") != std::string::npos);
  program.kill(SIGTERM);
  const auto status = program.wait_for(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(WEXITSTATUS(*status) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
