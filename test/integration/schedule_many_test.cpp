// store::schedule_many and scheduler::schedule_many on both stores: every task lands, a
// failing task does not stop the others and is named, and the scheduler runs them all.
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "support/run_coroutine.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::run_scenario;
using both_stores = corvo::test::schedule_stores<8>;

std::vector<sched::task> numbered(std::size_t count, sched::time_point due) {
  std::vector<sched::task> out;
  for (std::size_t i = 0; i < count; ++i) {
    sched::task t;
    t.id = "bulk-" + std::to_string(i);
    t.type = "email";
    t.payload = static_cast<std::int64_t>(i);
    t.due = due + std::chrono::microseconds(static_cast<long long>(i));  // due order = index
    out.push_back(std::move(t));
  }
  return out;
}

template <class H>
asio::awaitable<void> schedules_every_task(H& h) {
  const auto due = sched::now() + 1h;
  co_await h.store.schedule_many(numbered(5000, due), 64);
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 5000u);
  const auto first = co_await h.store.browse(0, 3);
  BOOST_REQUIRE(first.size() == 3u);
  BOOST_TEST(first[0].id == "bulk-0");
  BOOST_TEST(first[2].id == "bulk-2");
  const auto last = co_await h.store.get("bulk-4999");
  BOOST_REQUIRE(last.has_value());
  BOOST_TEST(last->payload == boost::json::value(4999));
  BOOST_TEST((last->due == due + 4999us));
}

template <class H>
asio::awaitable<void> names_the_tasks_that_failed(H& h) {
  auto tasks = numbered(100, sched::now() + 1h);
  for (const std::size_t bad : {10u, 20u, 99u}) {
    tasks[bad].type.clear();  // refused by schedule(): a task needs a type
  }
  std::vector<std::string> failed;
  std::string message;
  try {
    co_await h.store.schedule_many(std::move(tasks), 8);
  } catch (const sched::schedule_many_error& e) {
    failed = e.failed_ids();
    message = e.what();
  }
  const std::vector<std::string> expected{"bulk-10", "bulk-20", "bulk-99"};
  BOOST_TEST(failed == expected, boost::test_tools::per_element());
  BOOST_TEST(message.find("3 task(s) not scheduled; first: bulk-") != std::string::npos, message);
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 97u);  // the others landed
  const auto refused = co_await h.store.get("bulk-20");
  BOOST_TEST(!refused.has_value());
  bool threw = false;
  try {
    co_await h.store.schedule_many(numbered(1, sched::now()), 0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(schedule_many_schedules_every_task, H, both_stores) {
  run_scenario<H>([](H& h) { return schedules_every_task(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(schedule_many_names_the_tasks_that_failed_and_keeps_the_rest, H,
                              both_stores) {
  run_scenario<H>([](H& h) { return names_the_tasks_that_failed(h); });
}

namespace {

struct counter {
  std::set<std::string>* seen;
  std::size_t* runs;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    seen->insert(t.work.id);
    ++*runs;
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

asio::awaitable<void> bulk_then_run(sched::scheduler& s, std::set<std::string>& seen,
                                    std::size_t& runs) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  co_await s.schedule_many(numbered(2000, sched::now()));
  for (int i = 0; i < 3000 && seen.size() < 2000; ++i) {
    co_await corvo::sleep_for(10ms);
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_scheduler_runs_every_task_of_a_bulk_schedule_once) {
  asio::io_context ctx;
  sched::scheduler s(ctx.get_executor(),
                     sched::scheduler_options::from(corvo::config::from_string("{}")));
  std::set<std::string> seen;
  std::size_t runs = 0;
  s.handlers().on_task("email", counter{&seen, &runs});
  corvo::test::run(ctx, bulk_then_run(s, seen, runs));
  BOOST_TEST(seen.size() == 2000u);
  BOOST_TEST(runs == 2000u);
}

namespace {

template <class H>
asio::awaitable<void> keeps_an_existing_task(H& h) {
  const auto due = sched::now() + 1h;
  auto first = numbered(1, due);
  first[0].payload = "original";
  BOOST_TEST(co_await h.store.schedule_if_absent(std::move(first[0])));
  auto second = numbered(1, due + 1min);
  second[0].payload = "replacement";
  BOOST_TEST(!co_await h.store.schedule_if_absent(std::move(second[0])));
  const auto kept = co_await h.store.get("bulk-0");
  BOOST_REQUIRE(kept.has_value());
  BOOST_TEST(kept->payload == boost::json::value("original"));
  BOOST_TEST((kept->due == due));

  // In flight: kept, and its run is not fenced off (its ack still holds).
  auto now_task = numbered(2, sched::now() - 1s);
  BOOST_TEST(co_await h.store.schedule_if_absent(std::move(now_task[1])));
  const auto shard = h.store.shard_of("bulk-1");
  const auto claimed = co_await h.store.claim(shard, 10, 30s);
  BOOST_REQUIRE(claimed.tasks.size() == 1u);
  auto again = numbered(2, sched::now());
  BOOST_TEST(!co_await h.store.schedule_if_absent(std::move(again[1])));
  std::vector<sched::completion> done(1);
  done[0].id = "bulk-1";
  done[0].token = claimed.tasks[0].token;
  BOOST_TEST(co_await h.store.ack(shard, std::move(done)) == 1u);
  // Gone after its run: added again.
  auto after = numbered(2, sched::now() + 1h);
  BOOST_TEST(co_await h.store.schedule_if_absent(std::move(after[1])));
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 2u);
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(schedule_if_absent_keeps_an_existing_task, H, both_stores) {
  run_scenario<H>([](H& h) { return keeps_an_existing_task(h); });
}
