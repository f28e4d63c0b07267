// safe_trim and the retention job's run on a real redis-server: trimming by age stops at the
// oldest entry pending in any group and, unless trim_undelivered, at the first entry a group
// has not read yet; the retention job's configuration.
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/stream/retention.hpp>
#include <corvo/stream/trim.hpp>

#include "support/redis_server.hpp"
#include "support/stream_admin_fixture.hpp"
#include "support/stream_commands.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using corvo::test::append;
using corvo::test::command;
using corvo::test::stream_ids;

namespace corvo::stream {
std::ostream& operator<<(std::ostream& out, trim_limit l) {
  return out << to_string(l);
}
}  // namespace corvo::stream

namespace {

// Entries 1000-0 … 8000-0 (1970: old by any age) and two made now; then
//   billing reads 1000…3000 and acks 1000  -> pending 2000, 3000; last delivered 3000
//   audit   reads 1000…6000, acks all but 5000 -> pending 5000; last delivered 6000
asio::awaitable<std::vector<std::string>> two_groups(redis::client& redis, std::string key) {
  std::vector<std::string> recent;
  for (int i = 1; i <= 8; ++i) {
    const auto id = std::to_string(i * 1000) + "-0";
    co_await append(redis, key, corvo::test::field("n", std::to_string(i)), id);
  }
  for (int i = 0; i < 2; ++i) {
    recent.push_back(co_await append(redis, key, corvo::test::field("recent", "1")));
  }
  co_await command(redis, "XGROUP", "CREATE", key, "billing", "0");
  co_await command(redis, "XGROUP", "CREATE", key, "audit", "0");
  co_await corvo::test::read_group(redis, key, "billing", "b1", 3);
  co_await command(redis, "XACK", key, "billing", "1000-0");
  co_await corvo::test::read_group(redis, key, "audit", "a1", 6);
  co_await command(redis, "XACK", key, "audit", "1000-0", "2000-0", "3000-0", "4000-0", "6000-0");
  co_return recent;
}

stream::trim_options older_than_an_hour(bool trim_undelivered = false) {
  stream::trim_options o;
  o.max_age = std::chrono::hours(1);
  o.trim_undelivered = trim_undelivered;
  return o;
}

asio::awaitable<void> pending_and_undelivered_entries_are_kept(redis::client& redis) {
  const std::string key = "orders";
  const auto recent = co_await two_groups(redis, key);

  // The oldest pending entry (billing's 2000) bounds the trim.
  auto r = co_await stream::safe_trim(redis, key, older_than_an_hour());
  BOOST_TEST(r.trimmed == 1u);
  BOOST_TEST(r.min_id == "2000-0");
  BOOST_TEST(r.limited_by == stream::trim_limit::pending);
  BOOST_TEST(r.limiting_group == "billing");
  BOOST_TEST(r.length == 9u);
  BOOST_TEST(r.requested_min_id != r.min_id);

  // billing acks: nothing of it pending, but it has not read 4000 on.
  co_await command(redis, "XACK", key, "billing", "2000-0", "3000-0");
  r = co_await stream::safe_trim(redis, key, older_than_an_hour());
  BOOST_TEST(r.trimmed == 2u);
  BOOST_TEST(r.min_id == "3000-1");
  BOOST_TEST(r.limited_by == stream::trim_limit::undelivered);
  BOOST_TEST(r.limiting_group == "billing");
  BOOST_TEST((co_await stream_ids(redis, key)).front() == "4000-0");

  // Allowing undelivered entries to go: audit's pending 5000 still bounds it.
  r = co_await stream::safe_trim(redis, key, older_than_an_hour(true));
  BOOST_TEST(r.trimmed == 1u);
  BOOST_TEST(r.min_id == "5000-0");
  BOOST_TEST(r.limited_by == stream::trim_limit::pending);
  BOOST_TEST(r.limiting_group == "audit");
  const auto pending = co_await corvo::test::entry_fields(redis, key, "5000-0");
  BOOST_TEST(pending.size() == 1u);  // still there for audit's consumer to claim

  // Nothing pending any more: only the age bounds it; the recent entries stay.
  co_await command(redis, "XACK", key, "audit", "5000-0");
  r = co_await stream::safe_trim(redis, key, older_than_an_hour(true));
  BOOST_TEST(r.trimmed == 4u);
  BOOST_TEST(r.limited_by == stream::trim_limit::none);
  BOOST_TEST(r.min_id == r.requested_min_id);
  BOOST_TEST((co_await stream_ids(redis, key)) == recent);
}

}  // namespace

BOOST_AUTO_TEST_CASE(trim_never_passes_pending_or_unread_entries_of_any_group) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&pending_and_undelivered_entries_are_kept);
}

namespace {

asio::awaitable<void> trim_by_id_and_errors(redis::client& redis) {
  for (int i = 1; i <= 5; ++i) {
    co_await append(redis, "plain-log", corvo::test::field("n", std::to_string(i)),
                    std::to_string(i) + "-0");
  }
  stream::trim_options below_4;
  below_4.min_id = "4";
  auto r = co_await stream::safe_trim(redis, "plain-log", below_4);  // no groups
  BOOST_TEST(r.trimmed == 3u);
  BOOST_TEST(r.min_id == "4-0");
  BOOST_TEST(r.limited_by == stream::trim_limit::none);

  // A group that has read nothing keeps every entry by default.
  co_await command(redis, "XGROUP", "CREATE", "plain-log", "late", "0");
  stream::trim_options all;
  all.min_id = "100";
  r = co_await stream::safe_trim(redis, "plain-log", all);
  BOOST_TEST(r.trimmed == 0u);
  BOOST_TEST(r.min_id == "0-1");
  BOOST_TEST(r.limited_by == stream::trim_limit::undelivered);

  co_await command(redis, "SET", "a-string", "x");
  const auto error_of = [](std::exception_ptr e) -> boost::system::error_code {
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& failure) {
      return failure.code();
    }
  };
  std::exception_ptr missing, wrong, bad;
  try {
    co_await stream::safe_trim(redis, "nope", older_than_an_hour());
  } catch (...) {
    missing = std::current_exception();
  }
  try {
    co_await stream::safe_trim(redis, "a-string", older_than_an_hour());
  } catch (...) {
    wrong = std::current_exception();
  }
  stream::trim_options bad_id;
  bad_id.min_id = "soon";
  try {
    co_await stream::safe_trim(redis, "plain-log", bad_id);
  } catch (...) {
    bad = std::current_exception();
  }
  BOOST_REQUIRE(missing);
  BOOST_REQUIRE(wrong);
  BOOST_REQUIRE(bad);
  BOOST_TEST(error_of(missing) == make_error_code(stream::admin_error::no_such_stream));
  BOOST_TEST(error_of(wrong) == make_error_code(stream::admin_error::wrong_type));
  BOOST_TEST(error_of(bad) == make_error_code(stream::admin_error::bad_id));
}

}  // namespace

BOOST_AUTO_TEST_CASE(trim_by_id_and_clear_errors) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&trim_by_id_and_errors);
}

namespace {

asio::awaitable<stream::retention_run> retention_once(redis::client& redis) {
  co_await two_groups(redis, "{shop}:orders");
  co_await append(redis, "{shop}:audit-log", corvo::test::field("n", "1"), "1000-0");
  co_await command(redis, "SET", "not-a-stream", "x");
  stream::retention_options o;
  o.streams = {"{shop}:orders", "{shop}:audit-log", "never-written", "not-a-stream"};
  o.max_age = std::chrono::hours(1);
  stream::retention_job job(redis, o);
  auto run = co_await job.run_once();
  co_return run;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_retention_run_trims_each_stream_safely_and_reports_the_rest) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  const auto run = runner.run<stream::retention_run>(&retention_once);
  BOOST_REQUIRE(run.trimmed.size() == 2u);
  BOOST_TEST(run.trimmed[0].stream == "{shop}:orders");
  BOOST_TEST(run.trimmed[0].trimmed == 1u);  // billing's pending 2000 bounds it
  BOOST_TEST(run.trimmed[0].min_id == "2000-0");
  BOOST_TEST(run.trimmed[1].stream == "{shop}:audit-log");
  BOOST_TEST(run.trimmed[1].trimmed == 1u);  // no groups: the age alone
  BOOST_TEST(run.missing == std::vector<std::string>{"never-written"});
  BOOST_REQUIRE(run.failed.size() == 1u);
  BOOST_TEST(run.failed[0].stream == "not-a-stream");
  BOOST_TEST(!run.failed[0].retryable);
  BOOST_TEST(server.cli("XLEN", "{shop}:orders") == "9");
}

BOOST_AUTO_TEST_CASE(retention_options_come_from_stream_retention) {
  const auto cfg = corvo::config::from_string(R"({"stream": {"retention": {
      "streams": ["orders", "{shop}:events"], "max_age": "720h",
      "schedule": "cron 30 3 * * *", "trim_undelivered": true, "task_id": "shop.retention"}}})");
  const auto o = stream::retention_options::from(cfg);
  BOOST_TEST((o.streams == std::vector<std::string>{"orders", "{shop}:events"}));
  BOOST_TEST(o.max_age.count() == 720LL * 3600 * 1000);
  BOOST_TEST(o.schedule == "cron 30 3 * * *");
  BOOST_TEST(o.trim_undelivered);
  BOOST_TEST(o.task_id == "shop.retention");

  const auto defaults =
      stream::retention_options::from(corvo::config::from_string(R"({"stream": {"retention": {
      "streams": ["orders"]}}})"));
  BOOST_TEST(defaults.max_age.count() == 60LL * 24 * 3600 * 1000);
  BOOST_TEST(defaults.schedule == "cron 0 10 * * *");
  BOOST_TEST(!defaults.trim_undelivered);

  const auto refused = [](const char* json, const char* key) {
    try {
      stream::retention_options::from(corvo::config::from_string(json));
    } catch (const corvo::config_error& e) {
      BOOST_TEST(e.key() == key, json << ": " << e.what());
      return;
    }
    BOOST_ERROR(std::string("accepted: ") + json);
  };
  refused(R"({"stream": {"retention": {"streams": ["a"], "max_agee": "1h"}}})",
          "stream.retention.max_agee");
  refused(R"({"stream": {"retention": {"streams": []}}})", "stream.retention.streams");
  refused(R"({"stream": {"retention": {}}})", "stream.retention.streams");
  refused(R"({"stream": {"retention": {"streams": ["a"], "schedule": "cron 61 * * * *"}}})",
          "stream.retention.schedule");
  refused(R"({"stream": {"retention": {"streams": ["a"], "schedule": "daily"}}})",
          "stream.retention.schedule");
}

namespace {

struct schedule_checks {
  corvo::schedule::task first, again, changed;
};

asio::awaitable<schedule_checks> ensure_twice_then_change(redis::client& redis) {
  corvo::schedule::memory_store tasks(co_await asio::this_coro::executor);
  stream::retention_options o;
  o.streams.push_back("orders");
  o.schedule = "every 1h";
  stream::retention_job job(redis, o);
  schedule_checks out;
  co_await job.ensure_scheduled(tasks);
  out.first = (co_await tasks.get(o.task_id)).value();
  co_await job.ensure_scheduled(tasks);  // another process starting: left alone
  out.again = (co_await tasks.get(o.task_id)).value();
  o.schedule = "cron 0 10 * * *";
  stream::retention_job daily(redis, o);
  co_await daily.ensure_scheduled(tasks);  // the schedule changed: replaced
  out.changed = (co_await tasks.get(o.task_id)).value();
  co_return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ensure_scheduled_keeps_a_live_task_and_replaces_a_changed_schedule) {
  corvo::test::client_runner runner(redis::client_config::from_url("redis://127.0.0.1:1"));
  const auto before = corvo::schedule::now();
  const auto c = runner.run<schedule_checks>(&ensure_twice_then_change);
  BOOST_TEST(c.first.type == std::string(stream::retention_job::task_type));
  BOOST_TEST((c.first.due >= before + std::chrono::hours(1)));
  BOOST_TEST((c.first.due <= corvo::schedule::now() + std::chrono::hours(1)));
  BOOST_TEST(corvo::schedule::describe(c.first.repeat) == "every 1h");
  BOOST_TEST((c.again.due == c.first.due));  // not moved by the second ensure
  BOOST_TEST(corvo::schedule::describe(c.changed.repeat) == "cron 0 10 * * *");
  const auto due_s =
      std::chrono::duration_cast<std::chrono::seconds>(c.changed.due.time_since_epoch()).count();
  BOOST_TEST(due_s % 86400 == 10 * 3600);  // 10:00 UTC
}
