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

// The retention job, on a short schedule, with two processes sharing Redis and the database,
// and its default max_age of 60 days. Before the programs start, the stream gets 40 events
// 61 days old and 30 events 59 days old (entry ids and event times alike); then 200 requests
// add new ones. Proves, with exact counts: every event is stored once (270); the runs trim
// exactly the 40 entries older than the cutoff from the stream (XLEN 230, the 30 and the 200
// kept) and delete exactly their 40 rows (the 30 and the 200 kept); each run (due time) is
// claimed by exactly one of the two processes (the scheduler's Redis store); both keep
// serving.
BOOST_AUTO_TEST_CASE(the_retention_job_trims_the_stream_and_deletes_rows_older_than_60_days) {
  using namespace access_events_scenario;
  corvo::test::redis_server redis;
  corvo::test::temp_dir dir("access-events-retention");
  const std::string database_url = "sqlite:" + (dir.path() / "events.db").string();
  const auto log = dir.path() / "access_events.log";
  const auto other_log = dir.path() / "access_events-2.log";

  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  constexpr std::int64_t day_ms = 24 * 3600 * 1000;
  const auto old_ms = now_ms - 61 * day_ms;
  const auto recent_ms = now_ms - 59 * day_ms;
  // ARGV: first time, count, event id prefix; entry i: id "<first + i>-0", "at" the same.
  const std::string seed =
      "for i = 0, tonumber(ARGV[2]) - 1 do "
      "local at = tostring(tonumber(ARGV[1]) + i) "
      "redis.call('XADD', KEYS[1], at .. '-0', 'event_id', ARGV[3] .. i, 'category', 'page', "
      "'method', 'GET', 'path', '/seeded', 'status', '200', 'at', at) end return 0";
  BOOST_REQUIRE_EQUAL(
      redis.cli("EVAL", seed, "1", "access-events", std::to_string(old_ms), "40", "old-"), "0");
  BOOST_REQUIRE_EQUAL(
      redis.cli("EVAL", seed, "1", "access-events", std::to_string(recent_ms), "30", "recent-"),
      "0");
  BOOST_REQUIRE_EQUAL(redis.cli("XLEN", "access-events"), "70");

  // Configuration overrides through the environment, as an operator would set them (max_age
  // stays the built-in 60 days).
  ::setenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE", "every 1s", 1);
  corvo::test::child_process program({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(),
                                      "--database", database_url, "--listen", "127.0.0.1:0"},
                                     dir.path(), log);
  corvo::test::child_process other({CORVO_ACCESS_EVENTS_PATH, "--redis", redis.url(), "--database",
                                    database_url, "--listen", "127.0.0.1:0"},
                                   dir.path(), other_log);
  ::unsetenv("CORVO_ACCESS_EVENTS__RETENTION__SCHEDULE");
  const auto port = wait_for_port(program, log);
  const auto other_port = wait_for_port(other, other_log);

  // Sums of a number over both logs' lines matching `pattern` (group 1), and the lines' count.
  auto sum_in_logs = [&](const std::string& pattern) {
    const std::regex re(pattern);
    std::pair<std::int64_t, std::size_t> out{0, 0};
    for (const auto& path : {log, other_log}) {
      const auto text = read_file(path);
      for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
        out.first += std::stoll((*it)[1]);
        ++out.second;
      }
    }
    return out;
  };
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
  auto count_rows = [](db::database& store, std::string where) -> asio::awaitable<std::int64_t> {
    auto rows = co_await store.query("SELECT COUNT(*) FROM access_event WHERE " + where);
    co_return std::get<std::int64_t>(rows.rows.at(0).at(0));
  };

  asio::io_context context;
  db::database store({.url = database_url});
  std::int64_t stored = 0;
  corvo::test::run(context, [&]() -> asio::awaitable<void> {
    auto load = co_await access_events::run_load(port, 200, 8, 0);
    BOOST_TEST(load.failed == 0u);
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      // The two processes share the consumer group: each stores what it read.
      const auto now = co_await stats(port);
      const auto other_now = co_await stats(other_port);
      stored = number(now, "stored") + number(other_now, "stored");
      if (stored >= 270) {
        break;
      }
      BOOST_REQUIRE_MESSAGE(
          std::chrono::steady_clock::now() < until,
          "not stored: " << json::serialize(now) << " " << json::serialize(other_now));
      co_await corvo::sleep_for(20ms);
    }
    // The old entries and rows go with the next runs; everything else stays.
    for (;;) {
      const auto rows = co_await count_rows(store, "1 = 1");
      const auto length = redis.cli("XLEN", "access-events");
      if (rows == 230 && length == "230") {
        break;
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "not trimmed: " << rows << " rows, XLEN " << length);
      co_await corvo::sleep_for(50ms);
    }
    BOOST_TEST(co_await count_rows(store, "event_id LIKE 'old-%'") == 0);
    BOOST_TEST(co_await count_rows(store, "event_id LIKE 'recent-%'") == 30);
    BOOST_TEST(co_await count_rows(store, "path = '/seeded'") == 30);
    // A few more runs, then: no due time ran twice (in one process or in both).
    while (runs().size() < 4) {
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                            "only " << runs().size() << " retention runs");
      co_await corvo::sleep_for(50ms);
    }
  }());
  BOOST_TEST(stored == 270);  // each event once, the old ones before their deletion
  // The stream: the 40 old entries gone, the 30 recent ones first, then the 200 new ones.
  BOOST_TEST(redis.cli("XLEN", "access-events") == "230");
  const auto old_range =
      redis.cli("XRANGE", "access-events", std::to_string(old_ms), std::to_string(old_ms + 39));
  BOOST_TEST(old_range.empty(), old_range);
  const auto first = redis.cli("XRANGE", "access-events", "-", "+", "COUNT", "1");
  BOOST_TEST(first.find(std::to_string(recent_ms) + "-0") == 0u, first);
  BOOST_TEST(first.find("recent-0") != std::string::npos, first);
  // Over every run of both processes: exactly 40 entries trimmed and 40 rows deleted.
  const auto trimmed = sum_in_logs(R"(trimmed (\d+) entries of 'access-events')");
  const auto deleted = sum_in_logs(R"(retention: deleted (\d+) rows older than)");
  BOOST_TEST(trimmed.first == 40);
  BOOST_TEST(deleted.first == 40);
  BOOST_TEST_MESSAGE("retention runs: " << deleted.second << " (trimming " << trimmed.second
                                        << "), trimmed " << trimmed.first << ", deleted "
                                        << deleted.first);

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
