// store::schedule_deduplicated on both stores: within a task id's window a later schedule
// replaces the waiting task's payload and due time (debounce) or is dropped; after the
// window, or once the task no longer waits, it is scheduled anew; the scheduler runs a
// debounced task once, with the last payload.
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <string>
#include <vector>

#include "support/dedup_tasks.hpp"
#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

/// The memory store on a manual clock (`pass` moves it); the Redis store waits for real.
using corvo::test::dedup_task;
using corvo::test::dedup_window;
using corvo::test::run_scenario;
using both_stores = corvo::test::schedule_stores<4, true>;

template <class H>
asio::awaitable<void> replace_within_the_window(H& h) {
  const auto due = sched::now() + 1h;
  const auto replace = dedup_window(2s, sched::dedup_mode::replace);
  auto outcome = co_await h.store.schedule_deduplicated(dedup_task("doc-7", "v1", due), replace);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  outcome = co_await h.store.schedule_deduplicated(dedup_task("doc-7", "v2", due + 5min), replace);
  BOOST_TEST((outcome == sched::dedup_outcome::replaced));
  auto got = co_await h.store.get("doc-7");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("v2"));
  BOOST_TEST((got->due == due + 5min));
  BOOST_TEST((got->occurrence == due + 5min));
  auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 1u);

  // After the window: a plain schedule (upsert) that opens a new window.
  co_await h.pass(2100ms);
  outcome = co_await h.store.schedule_deduplicated(dedup_task("doc-7", "v3", due + 7min), replace);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  got = co_await h.store.get("doc-7");
  BOOST_TEST(got->payload == boost::json::value("v3"));
  outcome = co_await h.store.schedule_deduplicated(dedup_task("doc-7", "v4", due), replace);
  BOOST_TEST((outcome == sched::dedup_outcome::replaced));
  got = co_await h.store.get("doc-7");
  BOOST_TEST(got->payload == boost::json::value("v4"));
  BOOST_TEST((got->due == due));
  stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 1u);
}

template <class H>
asio::awaitable<void> drop_within_the_window(H& h) {
  const auto due = sched::now() + 1h;
  const auto drop = dedup_window(2s, sched::dedup_mode::drop);
  auto outcome = co_await h.store.schedule_deduplicated(dedup_task("mail-1", "first", due), drop);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  outcome = co_await h.store.schedule_deduplicated(dedup_task("mail-1", "second", due + 1s), drop);
  BOOST_TEST((outcome == sched::dedup_outcome::dropped));
  // Dropped even once the task is gone: at most one schedule per window.
  BOOST_TEST(co_await h.store.cancel("mail-1"));
  outcome = co_await h.store.schedule_deduplicated(dedup_task("mail-1", "third", due), drop);
  BOOST_TEST((outcome == sched::dedup_outcome::dropped));
  const auto gone = co_await h.store.get("mail-1");
  BOOST_TEST(!gone.has_value());
  co_await h.pass(2100ms);
  outcome = co_await h.store.schedule_deduplicated(dedup_task("mail-1", "fourth", due), drop);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  const auto got = co_await h.store.get("mail-1");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("fourth"));
  // Another id has its own window.
  outcome = co_await h.store.schedule_deduplicated(dedup_task("mail-2", "other", due), drop);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
}

template <class H>
asio::awaitable<void> no_longer_waiting(H& h) {
  const auto replace = dedup_window(60s, sched::dedup_mode::replace);
  auto outcome = co_await h.store.schedule_deduplicated(
      dedup_task("job", "first", sched::now() - 1s), replace);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  const auto shard = h.store.shard_of("job");
  const auto claimed = co_await h.store.claim(shard, 10, 30s);
  BOOST_REQUIRE(claimed.tasks.size() == 1u);
  // In flight within the window: scheduled anew (the run in flight is fenced off).
  outcome = co_await h.store.schedule_deduplicated(dedup_task("job", "second", sched::now() + 1h),
                                                   replace);
  BOOST_TEST((outcome == sched::dedup_outcome::scheduled));
  std::vector<sched::completion> done(1);
  done[0].id = "job";
  done[0].token = claimed.tasks[0].token;
  BOOST_TEST(co_await h.store.ack(shard, std::move(done)) == 0u);
  const auto got = co_await h.store.get("job");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == boost::json::value("second"));
  BOOST_TEST((got->state == sched::task_state::scheduled));
  BOOST_TEST(got->attempts == 0u);
}

template <class H>
asio::awaitable<void> refuses_a_window_of_zero(H& h) {
  bool threw = false;
  try {
    co_await h.store.schedule_deduplicated(dedup_task("x", "p", sched::now()),
                                           dedup_window(0ms, sched::dedup_mode::drop));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
  const auto none = co_await h.store.get("x");
  BOOST_TEST(!none.has_value());
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(a_schedule_within_the_window_replaces_the_waiting_task, H,
                              both_stores) {
  run_scenario<H>([](H& h) { return replace_within_the_window(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_schedule_within_the_window_is_dropped_in_drop_mode, H,
                              both_stores) {
  run_scenario<H>([](H& h) { return drop_within_the_window(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_task_no_longer_waiting_is_scheduled_anew, H, both_stores) {
  run_scenario<H>([](H& h) { return no_longer_waiting(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_window_of_zero_is_refused, H, both_stores) {
  run_scenario<H>([](H& h) { return refuses_a_window_of_zero(h); });
}

namespace {

struct recorder {
  std::vector<std::string>* payloads;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    payloads->emplace_back(t.work.payload.as_string());
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

// Five schedules of one id within its window, before it is due, then the run.
asio::awaitable<void> debounce_then_run(sched::scheduler& s, std::vector<std::string>& payloads) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const auto replace = dedup_window(10s, sched::dedup_mode::replace);
  const auto due = sched::now() + 300ms;
  for (int i = 1; i <= 5; ++i) {
    auto t = dedup_task("debounced", "edit-" + std::to_string(i), due);
    const auto outcome = co_await s.schedule_deduplicated(std::move(t), replace);
    BOOST_TEST(
        (outcome == (i == 1 ? sched::dedup_outcome::scheduled : sched::dedup_outcome::replaced)));
  }
  // Ran and gone (nothing left that could run again).
  const bool ran = co_await corvo::test::eventually([&] { return !payloads.empty(); }, 10s);
  BOOST_TEST(ran);
  const auto stats = co_await s.stats();
  BOOST_TEST(stats.scheduled + stats.in_flight == 0u);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_scheduler_runs_a_debounced_task_once_with_the_last_payload) {
  asio::io_context ctx;
  sched::scheduler s(ctx.get_executor(),
                     sched::scheduler_options::from(corvo::config::from_string("{}")));
  std::vector<std::string> payloads;
  s.handlers().on_task("index.rebuild", recorder{&payloads});
  corvo::test::run(ctx, debounce_then_run(s, payloads));
  const std::vector<std::string> expected{"edit-5"};
  BOOST_TEST(payloads == expected, boost::test_tools::per_element());
}
