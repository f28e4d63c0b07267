// store::schedule_deduplicated_by_key on both stores: a deduplication key apart from the task
// id. Within the key's window a later schedule, whatever its id, replaces the pending task
// (which is gone: it does not run) or is dropped; after the window, or once the pending task
// no longer waits, it is scheduled in a new window. Tasks in other shards than the previous
// one (on Redis: other hash slots than the key's window), the same id again, concurrent
// callers on several connections (exactly one task left, run once), the replaced task's
// `cancelled` event, the scheduler's run, and (Redis) what a caller that dies right after
// taking the window leaves.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/event_counts.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/dedup_tasks.hpp"
#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace sched = corvo::schedule;
namespace redis = corvo::redis;
using namespace std::chrono_literals;

namespace {

using corvo::test::dedup_task;
using corvo::test::dedup_window;
using corvo::test::run_scenario;
/// The memory store on a manual clock (`pass` moves it); the Redis store waits for real.
using both_stores = corvo::test::schedule_stores<4, true>;

/// `prefix` followed by the first number whose id the store puts in shard `shard` (when
/// `in` is true) or in any other shard (when false).
std::string id_for(const sched::store& s, const std::string& prefix, unsigned shard, bool in) {
  for (int i = 0;; ++i) {
    auto id = prefix + std::to_string(i);
    if ((s.shard_of(id) == shard) == in) {
      return id;
    }
  }
}

/// True when the store has no task `id`.
asio::awaitable<bool> absent(sched::store& s, std::string id) {
  const auto got = co_await s.get(std::move(id));
  co_return !got.has_value();
}

/// The tasks waiting (stats().scheduled).
asio::awaitable<std::uint64_t> scheduled(sched::store& s) {
  const auto stats = co_await s.stats();
  co_return stats.scheduled;
}

/// Claims every due task of every shard (a lease of 30 s).
asio::awaitable<std::vector<sched::claimed_task>> claim_all(sched::store& s) {
  std::vector<sched::claimed_task> out;
  for (unsigned shard = 0; shard < s.shards(); ++shard) {
    auto claimed = co_await s.claim(shard, 1000, 30s);
    for (auto& c : claimed.tasks) {
      out.push_back(std::move(c));
    }
  }
  co_return out;
}

asio::awaitable<void> ack(sched::store& s, const sched::claimed_task& c) {
  std::vector<sched::completion> done(1);
  done[0].id = c.work.id;
  done[0].token = c.token;
  BOOST_TEST(co_await s.ack(c.shard, std::move(done)) == 1u);
}

// A replace within the window, the new task in another shard than the pending one, then one
// in the same shard: each pending task is gone, the new one is due with its payload, and
// only the last runs.
template <class H>
asio::awaitable<void> replace_within_the_window(H& h) {
  const auto due = sched::now() - 1s;  // due at once: a claim takes whatever is left
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  const auto first = id_for(h.store, "edit-a", 0, true);
  const auto second = id_for(h.store, "edit-b", 0, false);                       // another shard
  const auto third = id_for(h.store, "edit-c", h.store.shard_of(second), true);  // the same
  auto r =
      co_await h.store.schedule_deduplicated_by_key(dedup_task(first, "v1", due), "doc:7", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(r.replaced_id.empty());
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task(second, "v2", due - 1s), "doc:7",
                                                    replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == first);
  BOOST_TEST(co_await absent(h.store, first));
  auto got = co_await h.store.get(second);
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("v2"));
  BOOST_TEST((got->due == due - 1s));
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task(third, "v3", due), "doc:7", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == second);
  BOOST_TEST(co_await absent(h.store, second));
  // Another key has its own window.
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("other", "o", due + 1h), "doc:8",
                                                    replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 2u);
  const auto ran = co_await claim_all(h.store);
  BOOST_REQUIRE(ran.size() == 1u);
  BOOST_TEST(ran[0].work.id == third);
  BOOST_TEST(ran[0].work.payload == boost::json::value("v3"));
  co_await ack(h.store, ran[0]);
}

// The same id again within its key's window: replaced in place while it waits; once in
// flight, scheduled anew (the run fenced off) in a new window.
template <class H>
asio::awaitable<void> the_same_id_again(H& h) {
  const auto due = sched::now() + 1h;
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  auto r =
      co_await h.store.schedule_deduplicated_by_key(dedup_task("same", "v1", due), "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("same", "v2", due + 1min), "k",
                                                    replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == "same");
  auto got = co_await h.store.get("same");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("v2"));
  BOOST_TEST((got->due == due + 1min));
  BOOST_TEST(co_await scheduled(h.store) == 1u);
  // In flight: the same id's upsert fences the run off (as schedule() does), a new window.
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("same", "v3", sched::now() - 1s),
                                                    "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  const auto running = co_await claim_all(h.store);
  BOOST_REQUIRE(running.size() == 1u);
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("same", "v4", due), "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(r.replaced_id.empty());
  std::vector<sched::completion> done(1);
  done[0].id = "same";
  done[0].token = running[0].token;
  BOOST_TEST(co_await h.store.ack(running[0].shard, std::move(done)) == 0u);
  got = co_await h.store.get("same");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("v4"));
  BOOST_TEST((got->state == sched::task_state::scheduled));
}

template <class H>
asio::awaitable<void> drop_within_the_window(H& h) {
  const auto due = sched::now() + 1h;
  const auto drop = dedup_window(2s, sched::dedup_mode::drop);
  auto r = co_await h.store.schedule_deduplicated_by_key(dedup_task("mail-a", "first", due),
                                                         "user:9", drop);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("mail-b", "second", due), "user:9",
                                                    drop);
  BOOST_TEST((r.outcome == sched::dedup_outcome::dropped));
  BOOST_TEST(r.replaced_id.empty());
  BOOST_TEST(co_await absent(h.store, "mail-b"));
  const auto kept = co_await h.store.get("mail-a");
  BOOST_REQUIRE(kept.has_value());
  BOOST_TEST(kept->payload == boost::json::value("first"));
  co_await h.pass(2300ms);
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("mail-c", "third", due), "user:9",
                                                    drop);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(co_await scheduled(h.store) == 2u);
}

// After the window closes a schedule opens a new one (the task of the old one is kept).
template <class H>
asio::awaitable<void> a_new_window_after_it_closes(H& h) {
  const auto due = sched::now() + 1h;
  const auto replace = dedup_window(2s, sched::dedup_mode::replace);
  auto r =
      co_await h.store.schedule_deduplicated_by_key(dedup_task("r-1", "a", due), "feed", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  co_await h.pass(2300ms);
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("r-2", "b", due), "feed", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(!co_await absent(h.store, "r-1"));
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("r-3", "c", due), "feed", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == "r-2");
  BOOST_TEST(!co_await absent(h.store, "r-1"));
  BOOST_TEST(co_await absent(h.store, "r-2"));
  BOOST_TEST(co_await scheduled(h.store) == 2u);
}

// The pending task in flight: not touched (its run acks), the new one is scheduled and the
// window restarts from then.
template <class H>
asio::awaitable<void> the_pending_task_in_flight(H& h) {
  const auto replace = dedup_window(2s, sched::dedup_mode::replace);
  auto r = co_await h.store.schedule_deduplicated_by_key(
      dedup_task("p-1", "first", sched::now() - 1s), "report", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  const auto running = co_await claim_all(h.store);
  BOOST_REQUIRE(running.size() == 1u);
  co_await h.pass(1200ms);
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("p-2", "second", sched::now() + 1h),
                                                    "report", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(r.replaced_id.empty());
  const auto in_flight = co_await h.store.get("p-1");
  BOOST_REQUIRE(in_flight.has_value());
  BOOST_TEST((in_flight->state == sched::task_state::in_flight));
  co_await ack(h.store, running[0]);
  // 2.4 s after the first schedule, 1.2 s after the second: within the restarted window only.
  co_await h.pass(1200ms);
  r = co_await h.store.schedule_deduplicated_by_key(dedup_task("p-3", "third", sched::now() + 1h),
                                                    "report", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == "p-2");
  BOOST_TEST(co_await scheduled(h.store) == 1u);
}

template <class H>
asio::awaitable<void> refusals(H& h) {
  const auto replace = dedup_window(1s, sched::dedup_mode::replace);
  bool threw = false;
  try {
    co_await h.store.schedule_deduplicated_by_key(dedup_task("x", "p", sched::now()), "", replace);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
  threw = false;
  try {
    const auto zero = dedup_window(0ms, sched::dedup_mode::replace);
    co_await h.store.schedule_deduplicated_by_key(dedup_task("x", "p", sched::now()), "k", zero);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
  BOOST_TEST(co_await absent(h.store, "x"));
  // Nothing was left open: the key opens a window now.
  const auto r = co_await h.store.schedule_deduplicated_by_key(dedup_task("x", "p", sched::now()),
                                                               "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(a_schedule_within_the_window_replaces_the_pending_task, H,
                              both_stores) {
  run_scenario<H>([](H& h) { return replace_within_the_window(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_same_id_within_the_window_is_replaced_in_place, H, both_stores) {
  run_scenario<H>([](H& h) { return the_same_id_again(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_schedule_within_the_window_is_dropped_in_drop_mode, H,
                              both_stores) {
  run_scenario<H>([](H& h) { return drop_within_the_window(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_schedule_after_the_window_opens_a_new_one, H, both_stores) {
  run_scenario<H>([](H& h) { return a_new_window_after_it_closes(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_pending_task_in_flight_is_not_touched, H, both_stores) {
  run_scenario<H>([](H& h) { return the_pending_task_in_flight(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(an_empty_key_and_a_zero_window_are_refused, H, both_stores) {
  run_scenario<H>([](H& h) { return refusals(h); });
}

namespace {

struct burst_results {
  std::vector<std::string> ids;
  std::vector<sched::dedup_result> results;
};

// `count` schedules of distinct ids with one key, one after the other on `s`.
asio::awaitable<void> schedule_burst(sched::store& s, int caller, int count, burst_results& out) {
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  for (int i = 0; i < count; ++i) {
    auto id = "c" + std::to_string(caller) + "-" + std::to_string(i);
    auto t = dedup_task(id, id, sched::now() - 1s);
    auto r = co_await s.schedule_deduplicated_by_key(std::move(t), "hot", replace);
    out.ids.push_back(std::move(id));
    out.results.push_back(std::move(r));
  }
}

// Callers on `stores` (one connection each) schedule at once with one key in replace mode:
// exactly one opened the window, every other schedule replaced a distinct pending one, and
// the one left (the id no schedule replaced) is the only task, and runs once.
asio::awaitable<void> concurrent_callers(std::vector<sched::store*> stores, int per_caller) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<burst_results> out(stores.size());
  {
    corvo::task_group group(ex);
    for (std::size_t c = 0; c < stores.size(); ++c) {
      co_await group.spawn(schedule_burst(*stores[c], static_cast<int>(c), per_caller, out[c]));
    }
    co_await group.join();
  }
  std::set<std::string> ids, replaced;
  std::size_t opened = 0, replacing = 0;
  for (const auto& b : out) {
    ids.insert(b.ids.begin(), b.ids.end());
    for (const auto& r : b.results) {
      if (r.outcome == sched::dedup_outcome::scheduled) {
        ++opened;
      } else if (r.outcome == sched::dedup_outcome::replaced) {
        ++replacing;
        BOOST_TEST(replaced.insert(r.replaced_id).second, r.replaced_id << " replaced twice");
      }
    }
  }
  const auto total = stores.size() * static_cast<std::size_t>(per_caller);
  BOOST_TEST(ids.size() == total);
  BOOST_TEST(opened == 1u);
  BOOST_TEST(replacing == total - 1);
  std::vector<std::string> left;
  for (const auto& id : ids) {
    if (!replaced.contains(id)) {
      left.push_back(id);
    }
  }
  BOOST_REQUIRE(left.size() == 1u);
  auto& s = *stores[0];
  BOOST_TEST(co_await scheduled(s) == 1u);
  const auto ran = co_await claim_all(s);
  BOOST_REQUIRE(ran.size() == 1u);
  BOOST_TEST(ran[0].work.id == left[0]);
  co_await ack(s, ran[0]);
  const auto after = co_await s.stats();
  BOOST_TEST(after.scheduled + after.in_flight == 0u);
}

asio::awaitable<void> run_client(redis::client& c) {
  co_await c.run();
}

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_callers_on_several_connections_leave_one_task) {
  auto& server = corvo::test::shared_schedule_server();
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  const auto name_space = corvo::test::next_schedule_namespace();
  constexpr std::size_t callers = 8;
  std::vector<std::unique_ptr<redis::client>> conns;
  std::vector<std::unique_ptr<sched::redis_store>> stores;
  std::vector<sched::store*> refs;
  for (std::size_t i = 0; i < callers; ++i) {
    conns.push_back(std::make_unique<redis::client>(ctx.get_executor(), url));
    asio::co_spawn(ctx, run_client(*conns.back()), [](std::exception_ptr) {});
    sched::redis_store_options o;
    o.name_space = name_space;
    o.shards = 4;
    stores.push_back(std::make_unique<sched::redis_store>(*conns.back(), url, o));
    refs.push_back(stores.back().get());
  }
  corvo::test::run(ctx, concurrent_callers(refs, 25), [&] {
    for (auto& c : conns) {
      c->cancel();
    }
  });
}

BOOST_AUTO_TEST_CASE(concurrent_callers_on_the_memory_store_leave_one_task) {
  asio::io_context ctx;
  sched::memory_store store(ctx.get_executor(), 4);
  const std::vector<sched::store*> refs(8, &store);
  corvo::test::run(ctx, concurrent_callers(refs, 25));
}

namespace {

struct recorder {
  std::vector<std::string>* ran;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    ran->push_back(t.work.id + "=" + std::string(t.work.payload.as_string()));
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

// Five schedules of distinct ids with one key within its window, before they are due.
asio::awaitable<void> debounce_then_run(sched::scheduler& s, std::vector<std::string>& ran) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const auto replace = dedup_window(10s, sched::dedup_mode::replace);
  const auto due = sched::now() + 300ms;
  for (int i = 1; i <= 5; ++i) {
    auto t = dedup_task("save-" + std::to_string(i), "edit-" + std::to_string(i), due);
    const auto r = co_await s.schedule_deduplicated_by_key(std::move(t), "doc:42", replace);
    BOOST_TEST(
        (r.outcome == (i == 1 ? sched::dedup_outcome::scheduled : sched::dedup_outcome::replaced)));
  }
  const bool done = co_await corvo::test::eventually([&] { return !ran.empty(); }, 10s);
  BOOST_TEST(done);
  const auto stats = co_await s.stats();
  BOOST_TEST(stats.scheduled + stats.in_flight == 0u);
  BOOST_TEST(s.scheduled_by_type().at("index.rebuild") == 5u);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_scheduler_runs_the_last_schedule_of_a_key_once) {
  asio::io_context ctx;
  sched::scheduler s(ctx.get_executor(),
                     sched::scheduler_options::from(corvo::config::from_string("{}")));
  std::vector<std::string> ran;
  s.handlers().on_task("index.rebuild", recorder{&ran});
  corvo::test::run(ctx, debounce_then_run(s, ran));
  const std::vector<std::string> expected{"save-5=edit-5"};
  BOOST_TEST(ran == expected, boost::test_tools::per_element());
}

namespace {

// With events on: the replaced pending task's `cancelled` event (reason "deduplicated") and
// both schedules' `scheduled` events are written and counted (events_written).
asio::awaitable<void> replaced_task_events(sched::store& s) {
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  const auto first = id_for(s, "ev-a", 0, true);
  const auto second = id_for(s, "ev-b", 0, false);
  sched::event_query from_start;
  from_start.from = std::string(sched::events_from_start);
  auto reader = co_await s.events(from_start);
  co_await s.schedule_deduplicated_by_key(dedup_task(first, "v1", sched::now() + 1h), "ev",
                                          replace);
  const auto r = co_await s.schedule_deduplicated_by_key(
      dedup_task(second, "v2", sched::now() + 1h), "ev", replace);
  BOOST_TEST(r.replaced_id == first);
  std::vector<std::string> seen;
  while (seen.size() < 3) {
    const auto batch = co_await reader->read(10, 5s);
    BOOST_REQUIRE(!batch.empty());
    for (const auto& e : batch) {
      seen.push_back(std::string(to_string(e.kind)) + " " + e.task_id + " " + e.reason);
    }
  }
  std::sort(seen.begin(), seen.end());
  const std::vector<std::string> expected{"cancelled " + first + " deduplicated",
                                          "scheduled " + first + " ", "scheduled " + second + " "};
  BOOST_TEST(seen == expected, boost::test_tools::per_element());
  const auto written = sched::events_written(s);
  BOOST_TEST(written.of(sched::event_kind::scheduled) == 2u);
  BOOST_TEST(written.of(sched::event_kind::cancelled) == 1u);
  BOOST_TEST(written.total() == 3u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_replaced_task_has_a_cancelled_event_on_the_memory_store) {
  asio::io_context ctx;
  sched::memory_store store(ctx.get_executor(), 4);
  sched::events_options events;
  events.enabled = true;
  events.max_len = 100;
  store.set_events(events);
  corvo::test::run(ctx, replaced_task_events(store));
}

namespace {

// Runs `scenario(conn, store)`: a Redis store of 4 shards with `o`'s options on a fresh
// namespace of the shared server, over the client `conn`.
template <class Scenario>
void run_on_shared_redis(sched::redis_store_options o, Scenario scenario) {
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(corvo::test::shared_schedule_server().url());
  redis::client conn(ctx.get_executor(), url);
  asio::co_spawn(ctx, run_client(conn), [](std::exception_ptr) {});
  o.name_space = corvo::test::next_schedule_namespace();
  o.shards = 4;
  sched::redis_store store(conn, url, o);
  corvo::test::run(ctx, scenario(conn, store), [&] { conn.cancel(); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_replaced_task_has_a_cancelled_event_on_redis) {
  sched::redis_store_options o;
  o.events.enabled = true;
  o.events.max_len = 100;
  run_on_shared_redis(
      o, [](redis::client&, sched::redis_store& store) { return replaced_task_events(store); });
}

namespace {

// Writes `value` into the window of `key` as a caller's step 1 would (docs/scheduler.md,
// Deduplication by key), standing for a caller that dies right after it.
asio::awaitable<void> take_window(redis::client& conn, sched::redis_store& s, std::string key,
                                  std::string value) {
  redis::request req;
  req.push("SET", s.dedup_window_key(key), value, "PX", "60000");
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  BOOST_TEST(std::get<0>(resp).value() == "OK");
}

// What a caller that dies after taking the window leaves, as documented: in replace mode the
// task it replaced is not voided (it and the next caller's both run); in drop mode the
// window drops every schedule until it closes.
asio::awaitable<void> crashed_after_the_window(redis::client& conn, sched::redis_store& s) {
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  const auto due = sched::now() + 1h;
  auto r = co_await s.schedule_deduplicated_by_key(dedup_task("kept", "p", due), "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::scheduled));
  co_await take_window(conn, s, "k", std::string(32, '0') + " never-written");
  r = co_await s.schedule_deduplicated_by_key(dedup_task("next", "n", due), "k", replace);
  BOOST_TEST((r.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == "never-written");
  BOOST_TEST(!co_await absent(s, "kept"));
  BOOST_TEST(!co_await absent(s, "next"));
  BOOST_TEST(co_await scheduled(s) == 2u);

  const auto drop = dedup_window(60s, sched::dedup_mode::drop);
  co_await take_window(conn, s, "d", std::string(32, '1') + " ghost");
  r = co_await s.schedule_deduplicated_by_key(dedup_task("dropped", "x", due), "d", drop);
  BOOST_TEST((r.outcome == sched::dedup_outcome::dropped));
  BOOST_TEST(co_await absent(s, "dropped"));

  // A window holding something else than 'TICKET ID' (not written by a store) is refused,
  // naming the key and what it holds; the task is not written.
  co_await take_window(conn, s, "bad", "garbage");
  std::string refused;
  try {
    co_await s.schedule_deduplicated_by_key(dedup_task("after-bad", "x", due), "bad", replace);
  } catch (const std::runtime_error& e) {
    refused = e.what();
  }
  BOOST_TEST(refused ==
             "redis_store schedule_deduplicated_by_key: the window of key 'bad' holds "
             "'garbage', not 'TICKET ID'");
  BOOST_TEST(co_await absent(s, "after-bad"));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_caller_dead_after_taking_the_window_leaves_what_the_docs_say) {
  run_on_shared_redis({}, [](redis::client& conn, sched::redis_store& store) {
    return crashed_after_the_window(conn, store);
  });
}
