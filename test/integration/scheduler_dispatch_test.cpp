// The dispatcher against both stores: tasks run at (never before) their due time, exactly
// once when nobody dies; cancel/reschedule take effect; recurring tasks run once per
// occurrence; failures retry with backoff and end in the dead-letter set, which replays;
// unknown types and undecodable payloads are dead-lettered with the reason; a Redis claim
// takes what falls due within claim_ahead and starts each task at its due time.
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <map>
#include <set>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;

namespace {

struct reminder {
  std::string user;
  int minutes = 0;
};

reminder tag_invoke(json::value_to_tag<reminder>, const json::value& v) {
  const auto& o = v.as_object();
  return {json::value_to<std::string>(o.at("user")), json::value_to<int>(o.at("minutes"))};
}

// What the handlers saw.
struct journal {
  std::map<std::string, int> runs;            // id -> times run
  std::map<std::string, time_point> started;  // id -> first start
  std::map<std::string, time_point> due;      // id -> due time it was claimed with
  std::vector<std::string> reminders;
  int failures_to_inject = 0;  // for "flaky" tasks
};

asio::awaitable<void> record_run(journal& j, const claimed_task& t) {
  ++j.runs[t.work.id];
  j.started.emplace(t.work.id, now());
  j.due.emplace(t.work.id, t.work.due);
  co_return;
}

struct recorder {
  journal* j;
  asio::awaitable<void> operator()(const claimed_task& t) const { return record_run(*j, t); }
};

asio::awaitable<void> flaky_run(journal& j, const claimed_task& t) {
  ++j.runs[t.work.id];
  throw std::runtime_error("flaky failure #" + std::to_string(j.runs[t.work.id]));
  co_return;
}

struct flaky {
  journal* j;
  asio::awaitable<void> operator()(const claimed_task& t) const { return flaky_run(*j, t); }
};

struct remind {
  journal* j;
  asio::awaitable<void> operator()(reminder r, const task&) const {
    j->reminders.push_back(r.user + ":" + std::to_string(r.minutes));
    co_return;
  }
};

task make_task(std::string id, std::string type, time_point due, json::value payload = {}) {
  task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.due = due;
  t.payload = std::move(payload);
  return t;
}

asio::awaitable<void> wait_until(std::function<bool()> done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    co_await corvo::sleep_for(2ms);
  }
}

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

// One scenario against one store; the dispatchers run until the scenario ends.
struct harness {
  store& tasks;
  handler_registry handlers;
  journal j;
  direct_sink sink{handlers};
  std::vector<std::unique_ptr<dispatcher>> dispatchers;

  harness(store& s, int count, dispatcher_options options) : tasks(s) {
    handlers.on_task("record", recorder{&j});
    handlers.on_task("flaky", flaky{&j});
    handlers.on<reminder>("remind", remind{&j});
    for (int i = 0; i < count; ++i) {
      dispatchers.push_back(std::make_unique<dispatcher>(tasks, sink, options));
    }
  }
};

dispatcher_options fast_options() {
  dispatcher_options o;
  o.max_in_flight = 32;
  o.claim_batch = 64;
  o.lease = 5000ms;
  o.max_sleep = 200ms;
  o.retry_backoff = {5ms, 20ms};
  o.drain_timeout = 2000ms;
  return o;
}

asio::awaitable<void> scenario_precision_cancel_reschedule(harness& h) {
  const auto start = now();
  // Cancel and move first: the 300 schedule() calls below may take longer than 200 ms on a
  // loaded machine, and a task cancelled after it became due may already have run.
  co_await h.tasks.schedule(make_task("cancelled", "record", start + 200ms));
  co_await h.tasks.schedule(make_task("moved", "record", start + 5s));
  BOOST_TEST(co_await h.tasks.cancel("cancelled"));
  BOOST_TEST(co_await h.tasks.reschedule("moved", start + 100ms));
  BOOST_TEST(!co_await h.tasks.cancel("no-such-task"));
  for (int i = 0; i < 300; ++i) {
    co_await h.tasks.schedule(
        make_task("t" + std::to_string(i), "record", start + std::chrono::milliseconds(50 + i)));
  }
  co_await wait_until([&] { return h.j.runs.size() >= 301; }, 10s);
  // Until every run is acknowledged and the store is empty: from then on nothing is left that
  // could run again (a duplicate) or run late (the cancelled task).
  for (int i = 0; i < 2000; ++i) {
    std::size_t acked = 0;
    for (auto& d : h.dispatchers)
      acked += d->stats().succeeded;
    const auto stats = co_await h.tasks.stats();
    if (acked >= 301 && stats.scheduled == 0 && stats.in_flight == 0)
      break;
    co_await corvo::sleep_for(5ms);
  }
}

// (Built outside the coroutine: GCC 12 rejects nested braced lists inside one.)
json::value reminder_payload(json::value user, int minutes) {
  json::object o;
  o["user"] = std::move(user);
  if (minutes >= 0)
    o["minutes"] = minutes;
  return o;
}

asio::awaitable<void> scenario_failures(harness& h) {
  auto failing = make_task("flaky-1", "flaky", now());
  failing.max_attempts = 3;
  co_await h.tasks.schedule(failing);
  co_await h.tasks.schedule(make_task("unknown-1", "no.such.type", now()));
  co_await h.tasks.schedule(make_task("bad-payload", "remind", now(), reminder_payload(42, -1)));
  co_await h.tasks.schedule(
      make_task("good-payload", "remind", now(), reminder_payload("ada", 15)));
  co_await wait_until([&] { return h.j.runs["flaky-1"] >= 3 && h.j.reminders.size() == 1; }, 10s);
  std::vector<task> dead;
  for (int i = 0; i < 500 && dead.size() < 3; ++i) {
    dead = co_await h.tasks.dead_letters(0, 10);
    co_await corvo::sleep_for(5ms);
  }
  BOOST_REQUIRE(dead.size() == 3u);
  std::map<std::string, task> by_id;
  for (auto& t : dead)
    by_id.emplace(t.id, t);
  BOOST_TEST(by_id.at("flaky-1").attempts == 3u);
  BOOST_TEST(by_id.at("flaky-1").last_error == "flaky failure #3");
  BOOST_TEST(by_id.at("unknown-1").last_error.find("no handler registered") != std::string::npos);
  BOOST_TEST(by_id.at("bad-payload").last_error.find("does not decode") != std::string::npos);
  BOOST_TEST(h.j.runs["flaky-1"] == 3);

  // Replay: back to due with fresh attempts; it fails three more times and is dead again.
  BOOST_TEST(co_await h.tasks.replay("flaky-1"));
  co_await wait_until([&] { return h.j.runs["flaky-1"] >= 6; }, 10s);
  BOOST_TEST(h.j.runs["flaky-1"] == 6);
  co_await corvo::sleep_for(100ms);
  const auto stats = co_await h.tasks.stats();
  BOOST_TEST(stats.dead == 3u);
  BOOST_TEST(co_await h.tasks.purge("unknown-1") == 1u);
  BOOST_TEST(co_await h.tasks.purge("") == 2u);
  BOOST_TEST((co_await h.tasks.stats()).dead == 0u);
}

// The occurrence a run belongs to: the scheduled time of that occurrence, whatever the
// retries and lease expiries did to its due time.
time_point occurrence_of(const claimed_task& t) {
  return t.work.occurrence;
}

// Runs of one recurring task, by occurrence. The first attempt of every `fail_every`-th
// occurrence (counted from the first) fails, so retries move the due time off the grid.
struct occurrence_journal {
  time_point first{};
  std::chrono::microseconds period{};
  int fail_every = 0;
  std::chrono::microseconds store_offset{};                 // the store's clock minus ours
  std::map<long long, int> succeeded;                       // occurrence (µs) -> successful runs
  std::map<long long, std::chrono::microseconds> lateness;  // of the successful run
  int failed = 0;
};

asio::awaitable<void> record_occurrence(occurrence_journal& j, const claimed_task& t) {
  const auto occurrence = occurrence_of(t);
  const auto index = (occurrence - j.first) / j.period;
  if (j.fail_every > 0 && index % j.fail_every == 1 && t.work.attempts == 1) {
    ++j.failed;
    throw std::runtime_error("first attempt of occurrence " + std::to_string(index) + " fails");
  }
  const auto key = occurrence.time_since_epoch().count();
  ++j.succeeded[key];
  j.lateness.emplace(key, now() + j.store_offset - occurrence);
  co_return;
}

struct occurrence_recorder {
  occurrence_journal* j;
  asio::awaitable<void> operator()(const claimed_task& t) const { return record_occurrence(*j, t); }
};

// Schedules "beat" at the store's now + one period, waits until `count` occurrences have
// succeeded, cancels it.
asio::awaitable<void> scenario_occurrences(harness& h, occurrence_journal& j, int count) {
  auto beat = make_task("beat", "beat", j.first);
  beat.repeat = interval{j.period};
  co_await h.tasks.schedule(beat);
  const auto last = (j.first + j.period * (count - 1)).time_since_epoch().count();
  co_await wait_until([&] { return j.succeeded.contains(last); }, 20s);
  BOOST_TEST(co_await h.tasks.cancel("beat"));
}

// Each occurrence from the first to the last observed succeeded exactly once, on the
// recurrence's grid (none skipped, none doubled, none drifted), within a period of its time.
void check_occurrences(const occurrence_journal& j, int count) {
  BOOST_TEST_REQUIRE(j.succeeded.size() >= static_cast<std::size_t>(count));
  long long expected = j.first.time_since_epoch().count();
  int off_grid = 0, doubled = 0, late = 0;
  for (const auto& [at, runs] : j.succeeded) {
    if (at != expected) {
      ++off_grid;
      BOOST_TEST_MESSAGE("occurrence " << at << " instead of " << expected);
      expected = at;
    }
    doubled += runs != 1 ? 1 : 0;
    late += j.lateness.at(at) >= j.period ? 1 : 0;
    expected += j.period.count();
  }
  BOOST_TEST(off_grid == 0);
  BOOST_TEST(doubled == 0);
  BOOST_TEST(late == 0);
  // A cancel races at most one more occurrence.
  BOOST_TEST(j.succeeded.size() <= static_cast<std::size_t>(count + 1));
}

// Runs `scenario` beside the harness's dispatchers, then stops them.
asio::awaitable<void> with_dispatchers(harness& h, asio::awaitable<void> scenario) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  for (auto& d : h.dispatchers) {
    co_await group.spawn(run_dispatcher(*d));
  }
  std::exception_ptr failed;
  try {
    co_await std::move(scenario);
  } catch (...) {
    failed = std::current_exception();
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
  if (failed)
    std::rethrow_exception(failed);
}

// A Redis store with its connection, or a memory store, behind one fixture.
struct redis_backend {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client conn{ctx.get_executor(), redis::client_config::from_url(server.url())};
  redis_store store{
      conn, redis::client_config::from_url(server.url()), {.name_space = "test", .shards = 4}};
  redis_backend() {
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  }
  void stop() { conn.cancel(); }
};

struct memory_backend {
  asio::io_context ctx;
  memory_store store{ctx.get_executor(), 4};
  void stop() {}
};

template <class Backend>
void check_precision(Backend& b) {
  harness h(b.store, 2, fast_options());
  corvo::test::run(b.ctx, with_dispatchers(h, scenario_precision_cancel_reschedule(h)),
                   [&] { b.stop(); });
  BOOST_TEST(h.j.runs.size() == 301u);  // 300 + moved
  BOOST_TEST(!h.j.runs.contains("cancelled"));
  int duplicates = 0, early = 0;
  for (const auto& [id, count] : h.j.runs) {
    duplicates += count - 1;
    if (h.j.started.at(id) < h.j.due.at(id))
      ++early;
  }
  BOOST_TEST(duplicates == 0);
  BOOST_TEST(early == 0);  // never before the due time
  std::size_t total = 0;
  for (auto& d : h.dispatchers)
    total += d->stats().succeeded;
  BOOST_TEST(total == 301u);
}

template <class Backend>
void check_failures(Backend& b) {
  harness h(b.store, 1, fast_options());
  corvo::test::run(b.ctx, with_dispatchers(h, scenario_failures(h)), [&] { b.stop(); });
  BOOST_TEST(h.j.reminders == std::vector<std::string>{"ada:15"});
}

// Three dispatchers compete for each occurrence of `every 100ms`; optionally retries.
template <class Backend>
void check_recurring(Backend& b, int fail_every = 0) {
  harness h(b.store, 3, fast_options());
  occurrence_journal j;
  j.period = 100ms;
  j.fail_every = fail_every;
  j.first = now() + 200ms;
  h.handlers.on_task("beat", occurrence_recorder{&j});
  corvo::test::run(b.ctx, with_dispatchers(h, scenario_occurrences(h, j, 8)), [&] { b.stop(); });
  check_occurrences(j, 8);
  if (fail_every > 0) {
    BOOST_TEST(j.failed >= 3);
  }
}

// `every 200ms` for 4 s on a memory store whose clock is `offset` ahead of the workers'.
void check_recurring_with_skew(std::chrono::milliseconds offset, int fail_every = 0) {
  asio::io_context ctx;
  memory_store store(ctx.get_executor(), 4);
  store.set_clock([offset] { return now() + offset; });
  harness h(store, 2, fast_options());
  occurrence_journal j;
  j.period = 200ms;
  j.fail_every = fail_every;
  j.store_offset = offset;
  j.first = now() + offset + 200ms;
  h.handlers.on_task("beat", occurrence_recorder{&j});
  corvo::test::run(ctx, with_dispatchers(h, scenario_occurrences(h, j, 20)));
  check_occurrences(j, 20);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_provider)
BOOST_AUTO_TEST_CASE(precision_cancel_reschedule_exactly_once) {
  redis_backend b;
  check_precision(b);
}
BOOST_AUTO_TEST_CASE(retries_dead_letters_replay_unknown_type_bad_payload) {
  redis_backend b;
  check_failures(b);
}
BOOST_AUTO_TEST_CASE(recurring_task_runs_once_per_occurrence) {
  redis_backend b;
  check_recurring(b);
}
BOOST_AUTO_TEST_CASE(recurring_task_keeps_its_grid_across_retries) {
  redis_backend b;
  check_recurring(b, 3);
}
BOOST_AUTO_TEST_SUITE_END()

// Claiming ahead (redis_store_options::claim_ahead): 100 tasks due over 50 ms, starting
// 1 s out, one shard, claim_ahead 100 ms. The dispatcher's claims at its start find nothing
// due (the first one, and the one after its wake-up subscription: watch_wakes wakes every
// shard once subscribed); it sleeps until the first due time, and its next claim takes all
// 100 at once; each still starts at (never before) its own due time, and runs exactly once.
BOOST_AUTO_TEST_CASE(one_claim_takes_what_falls_due_ahead_and_each_starts_at_its_due_time) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  redis_store_options options;
  options.name_space = "ahead";
  options.shards = 1;
  options.claim_ahead = 100ms;
  redis_store store(conn, cfg, options);
  auto dispatch = fast_options();
  dispatch.max_in_flight = 256;
  dispatch.claim_batch = 256;
  dispatch.max_sleep = 5s;
  harness h(store, 1, dispatch);
  std::vector<task> batch;
  const auto first_due = now() + 1s;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(make_task("a" + std::to_string(i), "record",
                              first_due + std::chrono::microseconds(500 * i)));
  }
  auto& d = *h.dispatchers.front();
  std::uint64_t claims_at_start = 0;
  std::uint64_t claimed_at_start = 0;
  std::function<bool()> all_ran = [&] { return h.j.runs.size() == 100; };
  // Until 150 ms before the first due time no claim can take a task; then one takes all.
  const auto count_claims = [&]() -> asio::awaitable<void> {
    co_await corvo::sleep_for(first_due - 150ms - now());
    claims_at_start = d.stats().claims;
    claimed_at_start = d.stats().claimed;
    co_await wait_until(all_ran, 20s);
  };
  const auto scenario = [&]() -> asio::awaitable<void> {
    co_await store.schedule_many(std::move(batch));
    BOOST_REQUIRE(now() < first_due);  // scheduled before the first due time
    co_await with_dispatchers(h, count_claims());
  };
  corvo::test::run(ctx, scenario(), [&] { conn.cancel(); });
  BOOST_TEST(h.j.runs.size() == 100u);
  int early = 0, twice = 0;
  for (const auto& [id, count] : h.j.runs) {
    twice += count > 1 ? 1 : 0;
    if (h.j.started.at(id) < h.j.due.at(id))
      ++early;
  }
  BOOST_TEST(early == 0);
  BOOST_TEST(twice == 0);
  BOOST_TEST(d.stats().claimed == 100u);
  BOOST_TEST(claimed_at_start == 0u);
  BOOST_TEST(claims_at_start >= 1u);
  BOOST_TEST(d.stats().claims == claims_at_start + 1);  // one claim for all 100
}

BOOST_AUTO_TEST_SUITE(memory_provider)
BOOST_AUTO_TEST_CASE(precision_cancel_reschedule_exactly_once) {
  memory_backend b;
  check_precision(b);
}
BOOST_AUTO_TEST_CASE(retries_dead_letters_replay_unknown_type_bad_payload) {
  memory_backend b;
  check_failures(b);
}
BOOST_AUTO_TEST_CASE(recurring_task_runs_once_per_occurrence) {
  memory_backend b;
  check_recurring(b);
}
BOOST_AUTO_TEST_CASE(recurring_task_keeps_its_grid_across_retries) {
  memory_backend b;
  check_recurring(b, 3);
}
BOOST_AUTO_TEST_CASE(occurrences_follow_the_store_clock_600ms_ahead) {
  check_recurring_with_skew(600ms);
}
BOOST_AUTO_TEST_CASE(occurrences_follow_the_store_clock_600ms_behind) {
  check_recurring_with_skew(-600ms);
}
BOOST_AUTO_TEST_SUITE_END()
