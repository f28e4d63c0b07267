// store::pause / resume on both stores: a paused type is set aside by claims (still scheduled
// and due: get, browse and stats show it) while other types run; a paused namespace claims
// nothing and reports no next due time (no busy loop); resume puts them back. A second store
// object on the same Redis namespace (another process) sees the pause. The scheduler runs a
// paused task on resume without waiting for a poll (max_sleep far beyond the test).
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
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

/// One shard: every claim below sees every task. `h.other` is a second store object on the
/// namespace (another process; the memory store is one process: the same store).
using corvo::test::run_scenario;
using both_stores = corvo::test::schedule_stores<1>;

sched::task make_task(std::string id, std::string type, sched::time_point due) {
  sched::task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.payload = 1;
  t.due = due;
  return t;
}

std::set<std::string> ids_of(const std::vector<sched::claimed_task>& tasks) {
  std::set<std::string> ids;
  for (const auto& c : tasks) {
    ids.insert(c.work.id);
  }
  return ids;
}

template <class H>
asio::awaitable<void> a_paused_type_is_set_aside(H& h) {
  const auto past = sched::now() - 10s;
  co_await h.store.schedule(make_task("mail-1", "email.send", past));
  co_await h.store.schedule(make_task("mail-2", "email.send", past + 1s));
  co_await h.store.schedule(make_task("sms-1", "sms.send", past + 2s));
  co_await h.store.schedule(make_task("sms-2", "sms.send", past + 3s));
  co_await h.other.pause("email.send");
  const auto state = co_await h.store.paused();
  BOOST_TEST(!state.all);
  const std::vector<std::string> expected_types{"email.send"};
  BOOST_TEST(state.types == expected_types, boost::test_tools::per_element());

  // A claim of 1 passes over both email tasks and takes sms-1.
  const auto first = co_await h.store.claim(0, 1, 30s);
  const std::set<std::string> sms1{"sms-1"};
  BOOST_TEST(ids_of(first.tasks) == sms1);
  BOOST_REQUIRE(first.next_due.has_value());  // sms-2, not a paused task
  BOOST_TEST((*first.next_due == past + 3s));
  // Set aside, still scheduled and due, listed in due order.
  const auto mail = co_await h.store.get("mail-1");
  BOOST_REQUIRE(mail.has_value());
  BOOST_TEST((mail->state == sched::task_state::scheduled));
  BOOST_TEST((mail->due == past));
  BOOST_TEST(mail->attempts == 0u);  // not an attempt
  const auto listed = co_await h.store.browse(0, 10);
  BOOST_REQUIRE(listed.size() == 3u);
  BOOST_TEST(listed[0].id == "mail-1");
  BOOST_TEST(listed[1].id == "mail-2");
  BOOST_TEST(listed[2].id == "sms-2");
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 3u);
  BOOST_TEST(stats.due_now == 3u);

  const auto second = co_await h.store.claim(0, 10, 30s);
  const std::set<std::string> sms2{"sms-2"};
  BOOST_TEST(ids_of(second.tasks) == sms2);
  BOOST_TEST(!second.next_due.has_value());  // only paused tasks left: nothing to wake for
  // A reschedule and a new schedule of a paused type are claimed when resumed too.
  const bool moved = co_await h.store.reschedule("mail-2", past + 5s);
  BOOST_TEST(moved);
  co_await h.store.schedule(make_task("mail-3", "email.send", past + 6s));
  const auto still_held = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(still_held.tasks.empty());

  co_await h.other.resume("email.send");
  const auto lifted = co_await h.store.paused();
  BOOST_TEST(lifted.types.empty());
  const auto resumed = co_await h.store.claim(0, 10, 30s);
  const std::set<std::string> mails{"mail-1", "mail-2", "mail-3"};
  BOOST_TEST(ids_of(resumed.tasks) == mails);
  for (const auto& c : resumed.tasks) {
    BOOST_TEST(c.work.attempts == 1u);
  }
}

template <class H>
asio::awaitable<void> a_paused_namespace_claims_nothing(H& h) {
  const auto past = sched::now() - 10s;
  co_await h.store.schedule(make_task("a", "email.send", past));
  co_await h.store.schedule(make_task("b", "sms.send", past));
  co_await h.other.pause("");
  const auto paused_all = co_await h.store.paused();
  BOOST_TEST(paused_all.all);
  const auto none = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(none.tasks.empty());
  BOOST_TEST(!none.next_due.has_value());  // the dispatcher sleeps until resume wakes it
  const auto due = co_await h.store.stats();
  BOOST_TEST(due.due_now == 2u);
  // A type pause is separate: lifting the namespace pause leaves it.
  co_await h.store.pause("sms.send");
  co_await h.other.resume("");
  const auto state = co_await h.store.paused();
  BOOST_TEST(!state.all);
  BOOST_TEST(state.types.size() == 1u);
  const auto claimed = co_await h.store.claim(0, 10, 30s);
  const std::set<std::string> a{"a"};
  BOOST_TEST(ids_of(claimed.tasks) == a);
  co_await h.store.resume("sms.send");
  const std::set<std::string> b{"b"};
  const auto then_b = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(ids_of(then_b.tasks) == b);
  bool threw = false;
  try {
    co_await h.store.pause("*");
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
}

template <class H>
asio::awaitable<void> cancel_and_replace_a_set_aside_task(H& h) {
  const auto past = sched::now() - 10s;
  co_await h.store.schedule(make_task("x", "email.send", past));
  co_await h.store.schedule(make_task("y", "email.send", past));
  co_await h.store.pause("email.send");
  const auto set_aside = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(set_aside.tasks.empty());  // both set aside
  const bool cancelled = co_await h.store.cancel("x");
  BOOST_TEST(cancelled);
  co_await h.store.schedule(make_task("y", "report.build", past));  // replaced: another type
  const auto claimed = co_await h.store.claim(0, 10, 30s);
  const std::set<std::string> y{"y"};
  BOOST_TEST(ids_of(claimed.tasks) == y);
  co_await h.store.resume("email.send");
  const auto after = co_await h.store.claim(0, 10, 30s);
  BOOST_TEST(after.tasks.empty());  // x is gone, y ran
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(a_paused_type_is_set_aside_and_runs_on_resume, H, both_stores) {
  run_scenario<H>([](H& h) { return a_paused_type_is_set_aside(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_paused_namespace_claims_nothing_until_resumed, H, both_stores) {
  run_scenario<H>([](H& h) { return a_paused_namespace_claims_nothing(h); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_set_aside_task_can_be_cancelled_or_replaced, H, both_stores) {
  run_scenario<H>([](H& h) { return cancel_and_replace_a_set_aside_task(h); });
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

// Pauses, schedules a due task, waits until a claim has set it aside, resumes: it runs at
// once (the dispatcher sleeps up to max_sleep = 10 min otherwise).
asio::awaitable<void> runs_on_resume(sched::scheduler& s, const std::string& type_to_pause,
                                     std::vector<std::string>& ran) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  co_await s.pause(type_to_pause);
  const auto claims_before = s.dispatch_stats().claims;
  co_await s.schedule(make_task("held", "email.send", sched::now()));
  // The wake-up of that schedule makes the dispatcher claim: the task is held back.
  const bool claimed = co_await corvo::test::eventually(
      [&] { return s.dispatch_stats().claims > claims_before; }, 10s);
  BOOST_TEST(claimed);
  BOOST_TEST(ran.empty());
  const auto held = co_await s.get("held");
  BOOST_REQUIRE(held.has_value());
  BOOST_TEST((held->state == sched::task_state::scheduled));
  co_await s.resume(type_to_pause);
  const bool resumed = co_await corvo::test::eventually([&] { return !ran.empty(); }, 10s);
  BOOST_TEST(resumed);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

void check_runs_on_resume(const std::string& type_to_pause) {
  asio::io_context ctx;
  auto options = sched::scheduler_options::from(corvo::config::from_string("{}"));
  options.dispatch.max_sleep = std::chrono::minutes(10);
  sched::scheduler s(ctx.get_executor(), options);
  std::vector<std::string> ran;
  s.handlers().on_task("email.send", recorder{&ran});
  corvo::test::run(ctx, runs_on_resume(s, type_to_pause, ran));
  const std::vector<std::string> expected{"held"};
  BOOST_TEST(ran == expected, boost::test_tools::per_element());
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_scheduler_runs_a_paused_type_on_resume_without_polling) {
  check_runs_on_resume("email.send");
}

BOOST_AUTO_TEST_CASE(the_scheduler_runs_a_paused_namespace_on_resume_without_polling) {
  check_runs_on_resume("");
}
