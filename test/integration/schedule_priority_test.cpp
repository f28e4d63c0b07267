// Priorities on both stores: in a backlog every due high task is claimed before every normal
// one and every normal one before every low one; the aging rule (due - level x 10 s) lets a
// long-due low task pass younger high ones, so the lowest level is never starved; a task
// keeps its priority through get, browse, stats, retry, reschedule and cancel; the scheduler
// runs a backlog in priority order.
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::run_scenario;
/// One shard: every claim sees every task.
using both_stores = corvo::test::schedule_stores<1>;

sched::task make_task(std::string id, sched::priority p, sched::time_point due) {
  sched::task t;
  t.id = std::move(id);
  t.type = "email.send";
  t.payload = 1;
  t.due = due;
  t.priority = p;
  return t;
}

constexpr sched::priority levels[] = {sched::priority::low, sched::priority::normal,
                                      sched::priority::high};

// 300 tasks (100 per level, interleaved, all due within the last second: a backlog),
// claimed 64 at a time: the levels come out high, then normal, then low, each task once.
template <class H>
asio::awaitable<void> backlog_scenario(H& h) {
  const auto start = sched::now() - 1s;
  std::vector<sched::task> tasks;
  std::map<std::string, sched::priority> level_of;
  for (int i = 0; i < 300; ++i) {
    const auto p = levels[i % 3];  // the low ones come due first
    auto id = "t" + std::to_string(i);
    level_of[id] = p;
    tasks.push_back(make_task(id, p, start + std::chrono::microseconds(i)));
  }
  co_await h.store.schedule_many(std::move(tasks), 64);
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 300u);
  BOOST_TEST(stats.due_now == 300u);
  const auto first = co_await h.store.browse(0, 3);  // due order, whatever the level
  BOOST_REQUIRE(first.size() == 3u);
  BOOST_TEST(first[0].id == "t0");
  BOOST_TEST(first[1].id == "t1");
  BOOST_TEST((first[1].priority == sched::priority::normal));
  BOOST_TEST(first[2].id == "t2");
  BOOST_TEST((first[2].priority == sched::priority::high));

  std::vector<sched::priority> order;
  std::set<std::string> seen;
  for (int round = 0; round < 10 && seen.size() < 300; ++round) {
    const auto got = co_await h.store.claim(0, 64, 30s);
    for (const auto& c : got.tasks) {
      BOOST_TEST(seen.insert(c.work.id).second, c.work.id << " claimed twice");
      BOOST_TEST((c.work.priority == level_of.at(c.work.id)));
      order.push_back(c.work.priority);
    }
  }
  BOOST_TEST(seen.size() == 300u);
  BOOST_REQUIRE(order.size() == 300u);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto expected = i < 100 ? sched::priority::high
                                  : (i < 200 ? sched::priority::normal : sched::priority::low);
    BOOST_TEST((order[i] == expected), "claim " << i);
  }
}

// The aging rule with the default 10 s step: keys (due - level x 10 s) relative to now are
// H2 -22 s, L -20 s, N -15 s, H1 -11 s; claims of one take them in that order.
template <class H>
asio::awaitable<void> aging_scenario(H& h) {
  const auto now = sched::now();
  co_await h.store.schedule(make_task("H1", sched::priority::high, now - 1s));
  co_await h.store.schedule(make_task("N", sched::priority::normal, now - 15s));
  co_await h.store.schedule(make_task("L", sched::priority::low, now - 30s));
  co_await h.store.schedule(make_task("H2", sched::priority::high, now - 12s));
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    const auto got = co_await h.store.claim(0, 1, 30s);
    BOOST_REQUIRE(got.tasks.size() == 1u);
    order.push_back(got.tasks[0].work.id);
  }
  const std::vector<std::string> expected{"H2", "L", "N", "H1"};
  BOOST_TEST(order == expected, boost::test_tools::per_element());
}

// A task keeps its level through a retry, a reschedule and a lease expiry; cancel finds it.
template <class H>
asio::awaitable<void> keeps_priority_scenario(H& h) {
  const auto now = sched::now();
  co_await h.store.schedule(make_task("hi", sched::priority::high, now - 1s));
  co_await h.store.schedule(make_task("lo", sched::priority::low, now + 1h));
  co_await h.store.schedule(make_task("gone", sched::priority::high, now + 1h));
  auto got = co_await h.store.get("hi");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((got->priority == sched::priority::high));
  BOOST_TEST((got->state == sched::task_state::scheduled));
  BOOST_TEST((got->due == now - 1s));

  auto claimed = co_await h.store.claim(0, 10, 30s);
  BOOST_REQUIRE(claimed.tasks.size() == 1u);
  // The head across the levels (a claim for the compact tier's move comes before it).
  BOOST_TEST((claimed.next_due == now + 1h - h.compact_lead));
  sched::failure failed;
  failed.id = "hi";
  failed.token = claimed.tasks[0].token;
  failed.error = "try again";
  failed.retry_in = std::chrono::microseconds(0);
  const bool nacked = co_await h.store.nack(0, failed);
  BOOST_TEST(nacked);
  got = co_await h.store.get("hi");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((got->priority == sched::priority::high));
  BOOST_TEST((got->state == sched::task_state::scheduled));

  // Back in the high level: with a long-due normal task (due 5 s ago: key -5 s, the retry's
  // key now - 10 s) the retried high task still goes first.
  co_await h.store.schedule(make_task("old-normal", sched::priority::normal, now - 5s));
  claimed = co_await h.store.claim(0, 1, 30s);
  BOOST_REQUIRE(claimed.tasks.size() == 1u);
  BOOST_TEST(claimed.tasks[0].work.id == "hi");
  BOOST_TEST(claimed.tasks[0].work.attempts == 2u);

  const bool moved = co_await h.store.reschedule("lo", now + 2h);
  BOOST_TEST(moved);
  got = co_await h.store.get("lo");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((got->priority == sched::priority::low));
  BOOST_TEST((got->due == now + 2h));

  const bool cancelled = co_await h.store.cancel("gone");
  BOOST_TEST(cancelled);
  const auto gone = co_await h.store.get("gone");
  BOOST_TEST(!gone.has_value());
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 2u);  // lo and old-normal
  BOOST_TEST(stats.in_flight == 1u);  // hi
}

// Paused tasks set aside by a claim do not end it early: two paused high tasks fill the
// first pass of a claim of 2, the claim goes on and takes the third high task.
template <class H>
asio::awaitable<void> paused_pass_scenario(H& h) {
  const auto now = sched::now();
  auto paused1 = make_task("sms-1", sched::priority::high, now - 3s);
  paused1.type = "sms.send";
  auto paused2 = make_task("sms-2", sched::priority::high, now - 2s);
  paused2.type = "sms.send";
  co_await h.store.schedule(std::move(paused1));
  co_await h.store.schedule(std::move(paused2));
  co_await h.store.schedule(make_task("mail", sched::priority::high, now - 1s));
  co_await h.other.pause("sms.send");
  const auto got = co_await h.store.claim(0, 2, 30s);
  BOOST_REQUIRE(got.tasks.size() == 1u);
  BOOST_TEST(got.tasks[0].work.id == "mail");
  co_await h.other.resume("sms.send");
  const auto rest = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(rest.tasks.size() == 2u);
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(a_claim_goes_on_past_paused_tasks_of_a_level, H, both_stores) {
  run_scenario<H>([](H& h) { return paused_pass_scenario(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_backlog_is_claimed_in_priority_order, H, both_stores) {
  run_scenario<H>([](H& h) { return backlog_scenario(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_long_due_low_task_is_not_starved, H, both_stores) {
  run_scenario<H>([](H& h) { return aging_scenario(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_task_keeps_its_priority, H, both_stores) {
  run_scenario<H>([](H& h) { return keeps_priority_scenario(h); });
}

namespace {

struct recorder {
  std::vector<std::string>* ran;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    ran->push_back(t.work.id);
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

asio::awaitable<void> run_backlog(sched::scheduler& s, std::vector<std::string>& ran) {
  const auto start = sched::now() - 1s;
  std::vector<sched::task> tasks;
  for (int i = 0; i < 30; ++i) {
    tasks.push_back(make_task(std::string(to_string(levels[i % 3])) + "-" + std::to_string(i),
                              levels[i % 3], start + std::chrono::microseconds(i)));
  }
  co_await s.schedule_many(std::move(tasks));
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const bool all = co_await corvo::test::eventually([&] { return ran.size() == 30; }, 20s);
  BOOST_TEST(all);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

// The scheduler, one run at a time, over a backlog scheduled before it started.
BOOST_AUTO_TEST_CASE(the_scheduler_runs_a_backlog_in_priority_order) {
  asio::io_context ctx;
  auto options = sched::scheduler_options::from(
      corvo::config::from_string(R"({"scheduler": {"shards": 1, "max_in_flight": 1}})"));
  sched::scheduler s(ctx.get_executor(), options);
  std::vector<std::string> ran;
  s.handlers().on_task("email.send", recorder{&ran});
  corvo::test::run(ctx, run_backlog(s, ran));
  BOOST_REQUIRE(ran.size() == 30u);
  for (std::size_t i = 0; i < ran.size(); ++i) {
    const std::string expected = i < 10 ? "high-" : (i < 20 ? "normal-" : "low-");
    BOOST_TEST(ran[i].rfind(expected, 0) == 0u, "run " << i << ": " << ran[i]);
  }
}
