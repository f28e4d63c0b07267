#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/run_coroutine.hpp"
#include "support/schedule_builders.hpp"

// Memory-store internals: shard hashing, the exact due-time boundary on the manual clock
// (due at store_now is due, one microsecond later is not: the Redis server's clock cannot
// be held still), and watch_wakes' delivery on the caller's executor. The store contract
// (fencing, expiry, extend, retries, caps, replay, cancel) runs against both stores from
// test/integration/schedule_store_contract_test.cpp.

namespace asio = boost::asio;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::email_task;

const sched::time_point t0 = sched::time_point{} + std::chrono::hours(24 * 365 * 54);

/// The store's clock, moved by hand.
struct manual_clock {
  sched::time_point now = t0;
  sched::time_point operator()() const { return now; }
};

/// A store with a manual clock on its own io_context; scenarios run with `run(...)`.
struct fixture {
  asio::io_context context;
  manual_clock clock;
  sched::memory_store store;

  explicit fixture(unsigned shards = 1, sched::dead_letter_limits limits = {})
      : store(context.get_executor(), shards, limits) {
    store.set_clock(std::ref(clock));
  }

  template <class T>
  T run(asio::awaitable<T> scenario) {
    return corvo::test::run(context, std::move(scenario));
  }
};


std::vector<std::string> ids_of(const std::vector<sched::claimed_task>& tasks) {
  std::vector<std::string> ids;
  for (const auto& c : tasks) {
    ids.push_back(c.work.id);
  }
  return ids;
}

using corvo::test::failing;

asio::awaitable<void> yield() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_store_suite)

BOOST_AUTO_TEST_CASE(shard_of_is_fnv1a_modulo_shards) {
  // Reference values of 32-bit FNV-1a.
  BOOST_TEST(sched::fnv1a_32("") == 0x811c9dc5u);
  BOOST_TEST(sched::fnv1a_32("a") == 0xe40c292cu);
  BOOST_TEST(sched::fnv1a_32("foobar") == 0xbf9cf968u);
  BOOST_TEST(sched::shard_of("foobar", 16) == 0xbf9cf968u % 16);
  BOOST_TEST(sched::shard_of("foobar", 1) == 0u);
  BOOST_TEST(sched::shard_of("foobar", 0) == 0u);
  asio::io_context context;
  const sched::memory_store store(context.get_executor(), 7);
  BOOST_TEST(store.shards() == 7u);
  for (const char* id : {"a", "order-17", "foobar", ""}) {
    BOOST_TEST(store.shard_of(id) == sched::fnv1a_32(id) % 7);
  }
  BOOST_CHECK_THROW(sched::memory_store(context.get_executor(), 0), std::invalid_argument);
}

namespace {

asio::awaitable<void> claim_in_due_order(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(email_task("c", t0 - 1s));
  co_await store.schedule(email_task("a", t0 - 3s));
  co_await store.schedule(email_task("later", t0 + 1s));
  co_await store.schedule(email_task("b", t0 - 2s));
  co_await store.schedule(email_task("now", t0));

  const auto first = co_await store.claim(0, 2, 10s);
  const std::vector<std::string> first_ids = {"a", "b"};
  BOOST_TEST(ids_of(first.tasks) == first_ids, boost::test_tools::per_element());
  BOOST_TEST((first.store_now == t0));
  BOOST_TEST_REQUIRE(first.next_due.has_value());
  BOOST_TEST((*first.next_due == t0 - 1s));
  BOOST_TEST_REQUIRE(first.next_lease_expiry.has_value());
  BOOST_TEST((*first.next_lease_expiry == t0 + 10s));
  BOOST_TEST(first.tasks[0].work.attempts == 1u);
  BOOST_TEST((first.tasks[0].work.state == sched::task_state::in_flight));
  BOOST_TEST((first.tasks[0].work.due == t0 - 3s));
  BOOST_TEST(first.tasks[0].shard == 0u);
  BOOST_TEST(first.tasks[0].token != first.tasks[1].token);
  BOOST_TEST((co_await store.get("a"))->attempts == 1u);
  BOOST_TEST(((co_await store.get("a"))->state == sched::task_state::in_flight));

  // Due exactly now is due; one microsecond later is not.
  const auto second = co_await store.claim(0, 10, 10s);
  const std::vector<std::string> second_ids = {"c", "now"};
  BOOST_TEST(ids_of(second.tasks) == second_ids, boost::test_tools::per_element());
  BOOST_TEST((*second.next_due == t0 + 1s));

  f.clock.now = t0 + 1s - 1us;
  BOOST_TEST((co_await store.claim(0, 10, 10s)).tasks.empty());
  f.clock.now = t0 + 1s;
  const auto third = co_await store.claim(0, 10, 10s);
  const std::vector<std::string> third_ids = {"later"};
  BOOST_TEST(ids_of(third.tasks) == third_ids, boost::test_tools::per_element());
  BOOST_TEST(!third.next_due.has_value());

  // A claim of 0 tasks only reports.
  co_await store.schedule(email_task("d", t0));
  const auto peek = co_await store.claim(0, 0, 10s);
  BOOST_TEST(peek.tasks.empty());
  BOOST_TEST((*peek.next_due == t0));

  bool out_of_range = false;
  try {
    co_await store.claim(1, 10, 10s);
  } catch (const std::out_of_range&) {
    out_of_range = true;
  }
  BOOST_TEST(out_of_range);
}

}  // namespace

BOOST_AUTO_TEST_CASE(claim_respects_due_times_order_and_limit) {
  fixture f;
  f.run(claim_in_due_order(f));
}

namespace {

struct watch_outcome {
  bool finished = false;
  std::exception_ptr error;
};

struct record_outcome {
  watch_outcome* outcome;
  void operator()(std::exception_ptr e) const {
    outcome->finished = true;
    outcome->error = e;
  }
};

struct record_wake {
  std::vector<unsigned>* woken;
  void operator()(unsigned shard) const { woken->push_back(shard); }
};

asio::awaitable<void> wakes_when_ahead_of_the_head(fixture& f, asio::cancellation_signal& stop,
                                                   watch_outcome& outcome) {
  auto& store = f.store;
  auto executor = co_await asio::this_coro::executor;
  std::vector<unsigned> woken;
  const std::function<void(unsigned)> on_wake = record_wake{&woken};
  asio::co_spawn(executor, store.watch_wakes(on_wake),
                 asio::bind_cancellation_slot(stop.slot(), record_outcome{&outcome}));
  co_await yield();
  co_await yield();
  // Registered: every shard once (what landed before reached no watcher).
  std::vector<unsigned> both;
  both.push_back(0);
  both.push_back(1);
  BOOST_TEST(woken == both, boost::test_tools::per_element());
  woken.clear();

  // Two shards: pick ids by their shard.
  std::vector<std::string> in_shard[2];
  for (int i = 0; in_shard[0].size() < 4 || in_shard[1].size() < 4; ++i) {
    const std::string id = "t" + std::to_string(i);
    in_shard[store.shard_of(id)].push_back(id);
  }
  const auto& s0 = in_shard[0];

  co_await store.schedule(email_task(s0[0], t0 + 10s));  // empty shard: becomes the head
  co_await yield();
  BOOST_TEST(woken == std::vector<unsigned>{0}, boost::test_tools::per_element());

  co_await store.schedule(email_task(s0[1], t0 + 20s));  // behind the head
  co_await yield();
  BOOST_TEST(woken.size() == 1u);

  co_await store.schedule(email_task(s0[2], t0 + 5s));  // ahead of the head
  co_await yield();
  BOOST_TEST(woken.size() == 2u);

  BOOST_TEST(co_await store.reschedule(s0[1], t0 + 1s));  // moved ahead
  co_await yield();
  BOOST_TEST(woken.size() == 3u);

  BOOST_TEST(co_await store.reschedule(s0[1], t0 + 30s));  // moved behind
  co_await yield();
  BOOST_TEST(woken.size() == 3u);

  co_await store.schedule(email_task(in_shard[1][0], t0 + 60s));  // head of the other shard
  co_await yield();
  const std::vector<unsigned> shards_woken = {0, 0, 0, 1};
  BOOST_TEST(woken == shards_woken, boost::test_tools::per_element());

  // A retry due before the head wakes too.
  f.clock.now = t0 + 5s;
  const auto run = co_await store.claim(0, 1, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  woken.clear();
  auto retry = failing(run.tasks[0].work.id, run.tasks[0].token, "retry", 1s);
  BOOST_TEST(co_await store.nack(0, std::move(retry)));
  co_await yield();
  BOOST_TEST(woken == std::vector<unsigned>{0}, boost::test_tools::per_element());

  BOOST_TEST(!outcome.finished);
  stop.emit(asio::cancellation_type::terminal);
  co_await yield();
  BOOST_TEST(outcome.finished);
  bool aborted = false;
  try {
    if (outcome.error) {
      std::rethrow_exception(outcome.error);
    }
  } catch (const boost::system::system_error& e) {
    aborted = e.code() == asio::error::operation_aborted;
  }
  BOOST_TEST(aborted);

  // Unregistered: nothing more arrives.
  co_await store.schedule(email_task(s0[3], t0 - 1h));
  co_await yield();
  BOOST_TEST(woken.size() == 1u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(watch_wakes_reports_new_heads_until_cancelled) {
  fixture f(2);
  asio::cancellation_signal stop;
  watch_outcome outcome;
  // Stopping the watcher whatever happens keeps a failed check from hanging the context.
  corvo::test::run(f.context, wakes_when_ahead_of_the_head(f, stop, outcome),
                   [&] { stop.emit(asio::cancellation_type::terminal); });
  BOOST_TEST(outcome.finished);
}

BOOST_AUTO_TEST_SUITE_END()
