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

namespace asio = boost::asio;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

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

sched::task make_task(std::string id, sched::time_point due, int payload = 0) {
  sched::task t;
  t.id = std::move(id);
  t.type = "email";
  t.payload = payload;
  t.due = due;
  t.max_attempts = 3;
  return t;
}

std::vector<std::string> ids_of(const std::vector<sched::task>& tasks) {
  std::vector<std::string> ids;
  for (const auto& t : tasks) {
    ids.push_back(t.id);
  }
  return ids;
}

std::vector<std::string> ids_of(const std::vector<sched::claimed_task>& tasks) {
  std::vector<std::string> ids;
  for (const auto& c : tasks) {
    ids.push_back(c.work.id);
  }
  return ids;
}

/// Builders of the store's argument types. GCC 12 mishandles braced aggregates holding
/// strings inside coroutines (double destruction), so scenarios build them through these.
sched::failure failing(std::string id, std::string token, std::string error,
                       std::optional<std::chrono::microseconds> retry_in) {
  sched::failure f;
  f.id = std::move(id);
  f.token = std::move(token);
  f.error = std::move(error);
  f.retry_in = retry_in;
  return f;
}

std::vector<sched::completion> completions(std::string id, std::string token,
                                           std::optional<sched::time_point> next_due = {}) {
  std::vector<sched::completion> out(1);
  out[0].id = std::move(id);
  out[0].token = std::move(token);
  out[0].next_due = next_due;
  return out;
}

std::vector<sched::lease_ref> lease_refs(std::string id, std::string token) {
  std::vector<sched::lease_ref> out(1);
  out[0].id = std::move(id);
  out[0].token = std::move(token);
  return out;
}

asio::awaitable<void> yield() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

/// Claims everything due in shard 0 with a 10 s lease.
asio::awaitable<sched::claim_result> claim_all(sched::memory_store& store) {
  co_return co_await store.claim(0, 100, 10s);
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

asio::awaitable<void> browse_in_due_order(fixture& f) {
  auto& store = f.store;
  // Dues 10 s apart in a scrambled order; two share a due time (ordered by id).
  const std::vector<int> offsets = {7, 3, 9, 0, 5, 1, 8, 2, 6, 4, 11, 10};
  std::set<unsigned> shards_used;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const std::string id = "task-" + std::to_string(offsets[i]);
    shards_used.insert(store.shard_of(id));
    co_await store.schedule(make_task(id, t0 + std::chrono::seconds(10 * offsets[i]), offsets[i]));
  }
  co_await store.schedule(make_task("task-5b", t0 + 50s));
  BOOST_TEST(shards_used.size() > 1u);  // the order really is merged across shards

  const auto all = co_await store.browse(0, 100);
  const std::vector<std::string> expected = {"task-0", "task-1",  "task-2", "task-3", "task-4",
                                             "task-5", "task-5b", "task-6", "task-7", "task-8",
                                             "task-9", "task-10", "task-11"};
  BOOST_TEST(ids_of(all) == expected, boost::test_tools::per_element());
  for (const auto& t : all) {
    BOOST_TEST((t.state == sched::task_state::scheduled));
  }
  const auto page = co_await store.browse(4, 3);
  const std::vector<std::string> page_ids = {"task-4", "task-5", "task-5b"};
  BOOST_TEST(ids_of(page) == page_ids, boost::test_tools::per_element());
  BOOST_TEST((co_await store.browse(13, 5)).empty());

  const auto got = co_await store.get("task-7");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST(got->type == "email");
  BOOST_TEST(got->payload == boost::json::value(7));
  BOOST_TEST((got->due == t0 + 70s));
  BOOST_TEST(got->max_attempts == 3u);
  BOOST_TEST(got->attempts == 0u);
  BOOST_TEST((got->state == sched::task_state::scheduled));
  BOOST_TEST(!(co_await store.get("nope")).has_value());
}

}  // namespace

BOOST_AUTO_TEST_CASE(schedule_get_and_browse_across_shards) {
  fixture f(4);
  f.run(browse_in_due_order(f));
}

namespace {

asio::awaitable<void> reject_bad_tasks(fixture& f) {
  auto no_id = make_task("", t0);
  auto no_type = make_task("x", t0);
  no_type.type.clear();
  auto newline_type = make_task("x", t0);
  newline_type.type = "a\nb";
  auto no_attempts = make_task("x", t0);
  no_attempts.max_attempts = 0;
  for (auto* bad : {&no_id, &no_type, &newline_type, &no_attempts}) {
    bool threw = false;
    try {
      co_await f.store.schedule(*bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    BOOST_TEST(threw);
  }
  BOOST_TEST((co_await f.store.stats()).scheduled == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(invalid_tasks_are_refused) {
  fixture f;
  f.run(reject_bad_tasks(f));
}

namespace {

asio::awaitable<void> claim_in_due_order(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("c", t0 - 1s));
  co_await store.schedule(make_task("a", t0 - 3s));
  co_await store.schedule(make_task("later", t0 + 1s));
  co_await store.schedule(make_task("b", t0 - 2s));
  co_await store.schedule(make_task("now", t0));

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
  co_await store.schedule(make_task("d", t0));
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

asio::awaitable<void> upsert_fences_the_running_version(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("job", t0, 1));
  const auto old_run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(old_run.tasks.size() == 1u);
  const auto old_token = old_run.tasks[0].token;

  co_await store.schedule(make_task("job", t0 + 5s, 2));
  const auto replaced = co_await store.get("job");
  BOOST_TEST(((replaced->state == sched::task_state::scheduled)));
  BOOST_TEST(replaced->attempts == 0u);
  BOOST_TEST(replaced->payload == boost::json::value(2));
  BOOST_TEST((co_await store.stats()).in_flight == 0u);

  // The old run can neither complete, fail nor extend the new version.
  auto stale_ack = completions("job", old_token);
  BOOST_TEST(co_await store.ack(0, stale_ack) == 0u);
  auto late = failing("job", old_token, "late", std::nullopt);
  BOOST_TEST(!(co_await store.nack(0, std::move(late))));
  auto stale_extend = lease_refs("job", old_token);
  const auto still_held = co_await store.extend(0, stale_extend, 10s);
  BOOST_TEST(still_held.size() == 1u);
  BOOST_TEST(!still_held.at(0));
  BOOST_TEST(((co_await store.get("job"))->state == sched::task_state::scheduled));

  f.clock.now = t0 + 5s;
  const auto new_run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(new_run.tasks.size() == 1u);
  BOOST_TEST(new_run.tasks[0].work.payload == boost::json::value(2));
  BOOST_TEST(new_run.tasks[0].token != old_token);
  auto ack = completions("job", new_run.tasks[0].token);
  BOOST_TEST(co_await store.ack(0, ack) == 1u);
  BOOST_TEST(!(co_await store.get("job")).has_value());
  // Acking twice counts once.
  BOOST_TEST(co_await store.ack(0, ack) == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(upsert_replaces_and_fences_the_run_in_flight) {
  fixture f;
  f.run(upsert_fences_the_running_version(f));
}

namespace {

asio::awaitable<void> expired_lease_is_claimed_again(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("job", t0 - 1s));
  const auto first = co_await store.claim(0, 10, 1000ms);
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  BOOST_TEST((*first.next_lease_expiry == t0 + 1s));

  f.clock.now = t0 + 1s - 1us;  // still leased
  BOOST_TEST((co_await store.claim(0, 10, 1000ms)).tasks.empty());
  f.clock.now = t0 + 1s;
  const auto second = co_await store.claim(0, 10, 1000ms);
  BOOST_TEST_REQUIRE(second.tasks.size() == 1u);
  BOOST_TEST(second.tasks[0].work.attempts == 2u);  // the dead worker's try counts
  BOOST_TEST((second.tasks[0].work.due == t0 + 1s));
  BOOST_TEST(second.tasks[0].token != first.tasks[0].token);

  auto stale = completions("job", first.tasks[0].token);
  BOOST_TEST(co_await store.ack(0, stale) == 0u);
  auto current = completions("job", second.tasks[0].token);
  BOOST_TEST(co_await store.ack(0, current) == 1u);
  BOOST_TEST((co_await store.stats()).in_flight == 0u);
}

asio::awaitable<void> extend_keeps_the_lease(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("slow", t0));
  co_await store.schedule(make_task("other", t0));
  const auto run = co_await store.claim(0, 10, 1000ms);
  BOOST_TEST_REQUIRE(run.tasks.size() == 2u);
  f.clock.now = t0 + 800ms;
  auto leases = lease_refs(run.tasks[0].work.id, run.tasks[0].token);
  leases.push_back(lease_refs(run.tasks[1].work.id, "bogus")[0]);
  const auto held = co_await store.extend(0, leases, 1000ms);
  BOOST_TEST(held.size() == 2u);
  BOOST_TEST(held.at(0));    // renewed
  BOOST_TEST(!held.at(1));   // a bogus token: not held
  f.clock.now = t0 + 1600ms;  // the other lease expired, the extended one holds until 1.8 s
  const auto again = co_await store.claim(0, 10, 1000ms);
  const std::vector<std::string> reclaimed = {run.tasks[1].work.id};
  BOOST_TEST(ids_of(again.tasks) == reclaimed, boost::test_tools::per_element());
  BOOST_TEST((*again.next_lease_expiry == t0 + 1800ms));
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_expired_lease_makes_the_task_claimable_and_the_token_stale) {
  fixture f;
  f.run(expired_lease_is_claimed_again(f));
}

BOOST_AUTO_TEST_CASE(extend_renews_only_held_leases) {
  fixture f;
  f.run(extend_keeps_the_lease(f));
}

namespace {

asio::awaitable<void> ack_with_next_due_reschedules(fixture& f) {
  auto& store = f.store;
  auto recurring = make_task("tick", t0);
  recurring.repeat = sched::interval{1h};
  co_await store.schedule(recurring);
  auto run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  // A failed try first, so the reschedule visibly resets attempts and the error.
  auto flaky = failing("tick", run.tasks[0].token, "flaky", 0us);
  BOOST_TEST(co_await store.nack(0, std::move(flaky)));
  run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.attempts == 2u);
  BOOST_TEST(run.tasks[0].work.last_error == "flaky");
  auto done = completions("tick", run.tasks[0].token, t0 + 1h);
  BOOST_TEST(co_await store.ack(0, done) == 1u);
  const auto next = co_await store.get("tick");
  BOOST_TEST_REQUIRE(next.has_value());
  BOOST_TEST(((next->state == sched::task_state::scheduled)));
  BOOST_TEST((next->due == t0 + 1h));
  BOOST_TEST(next->attempts == 0u);
  BOOST_TEST(next->last_error == "");
  BOOST_TEST((next->repeat == sched::recurrence{sched::interval{1h}}));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 1u);
  BOOST_TEST(stats.due_now == 0u);
  BOOST_TEST(stats.in_flight == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ack_with_next_due_reschedules_a_recurring_task) {
  fixture f;
  f.run(ack_with_next_due_reschedules(f));
}

namespace {

asio::awaitable<void> nack_retries_then_dead_letters(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("fragile", t0));
  auto run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  auto boom = failing("fragile", run.tasks[0].token, "boom\nline two", 5s);
  BOOST_TEST(co_await store.nack(0, std::move(boom)));
  auto waiting = co_await store.get("fragile");
  BOOST_TEST(((waiting->state == sched::task_state::scheduled)));
  BOOST_TEST((waiting->due == t0 + 5s));
  BOOST_TEST(waiting->attempts == 1u);
  BOOST_TEST(waiting->last_error == "boom line two");
  // The same token cannot fail the task twice.
  auto again = failing("fragile", run.tasks[0].token, "again", std::nullopt);
  BOOST_TEST(!(co_await store.nack(0, std::move(again))));

  BOOST_TEST((co_await claim_all(store)).tasks.empty());  // backing off
  f.clock.now = t0 + 5s;
  run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.attempts == 2u);
  // The caller decides it has had enough: no retry_in, so dead.
  auto gave_up = failing("fragile", run.tasks[0].token, "gave up", std::nullopt);
  BOOST_TEST(co_await store.nack(0, std::move(gave_up)));
  const auto dead = co_await store.get("fragile");
  BOOST_TEST(((dead->state == sched::task_state::dead)));
  BOOST_TEST(dead->last_error == "gave up");
  BOOST_TEST(dead->attempts == 2u);
  const auto letters = co_await store.dead_letters(0, 10);
  BOOST_TEST_REQUIRE(letters.size() == 1u);
  BOOST_TEST(letters[0].id == "fragile");
  BOOST_TEST(((letters[0].state == sched::task_state::dead)));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.dead == 1u);
  BOOST_TEST(stats.scheduled == 0u);
  BOOST_TEST(stats.in_flight == 0u);
  f.clock.now = t0 + 1h;
  BOOST_TEST((co_await claim_all(store)).tasks.empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(nack_retries_and_then_dead_letters) {
  fixture f;
  f.run(nack_retries_then_dead_letters(f));
}

namespace {

/// Schedules, claims and dead-letters `id` at the clock's current time.
asio::awaitable<void> kill(fixture& f, std::string id) {
  co_await f.store.schedule(make_task(id, f.clock.now));
  const auto run = co_await claim_all(f.store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  auto died = failing(id, run.tasks[0].token, "died " + id, std::nullopt);
  BOOST_TEST(co_await f.store.nack(0, std::move(died)));
}

asio::awaitable<void> dead_set_is_capped(fixture& f) {
  auto& store = f.store;
  for (int i = 0; i < 5; ++i) {
    co_await kill(f, "d" + std::to_string(i));
    f.clock.now += 1s;
  }
  const auto letters = co_await store.dead_letters(0, 10);
  const std::vector<std::string> newest_first = {"d4", "d3", "d2"};
  BOOST_TEST(ids_of(letters) == newest_first, boost::test_tools::per_element());
  BOOST_TEST(letters[0].last_error == "died d4");
  BOOST_TEST(!(co_await store.get("d0")).has_value());  // dropped entirely
  BOOST_TEST(!(co_await store.get("d1")).has_value());
  BOOST_TEST((co_await store.stats()).dead == 3u);
  const auto second_page = co_await store.dead_letters(1, 1);
  const std::vector<std::string> middle = {"d3"};
  BOOST_TEST(ids_of(second_page) == middle, boost::test_tools::per_element());

  // By age: an hour later, the next death drops everything older than the limit.
  f.clock.now += 1h;
  co_await kill(f, "fresh");
  const std::vector<std::string> only_fresh = {"fresh"};
  BOOST_TEST(ids_of(co_await store.dead_letters(0, 10)) == only_fresh,
             boost::test_tools::per_element());
}

}  // namespace

BOOST_AUTO_TEST_CASE(dead_letters_are_capped_by_count_and_age) {
  fixture f(1, sched::dead_letter_limits{3, 30min});
  f.run(dead_set_is_capped(f));
}

namespace {

asio::awaitable<void> replay_and_purge(fixture& f) {
  auto& store = f.store;
  for (const char* id : {"a", "b", "c"}) {
    co_await kill(f, id);
    f.clock.now += 1s;
  }
  co_await store.schedule(make_task("waiting", f.clock.now + 1h));

  BOOST_TEST(co_await store.replay("a"));
  const auto replayed = co_await store.get("a");
  BOOST_TEST(((replayed->state == sched::task_state::scheduled)));
  BOOST_TEST((replayed->due == f.clock.now));
  BOOST_TEST(replayed->attempts == 0u);
  BOOST_TEST(replayed->last_error == "died a");  // why it had died
  BOOST_TEST(!(co_await store.replay("a")));     // no longer dead
  BOOST_TEST(!(co_await store.replay("waiting")));
  BOOST_TEST(!(co_await store.replay("unknown")));
  const auto run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.id == "a");
  BOOST_TEST(run.tasks[0].work.attempts == 1u);

  BOOST_TEST(co_await store.purge("b") == 1u);
  BOOST_TEST(co_await store.purge("b") == 0u);
  BOOST_TEST(!(co_await store.get("b")).has_value());
  BOOST_TEST(co_await store.purge("waiting") == 0u);  // only dead tasks are purged
  BOOST_TEST(co_await store.purge("a") == 0u);        // in flight
  co_await kill(f, "d");
  BOOST_TEST(co_await store.purge("") == 2u);  // c and d
  BOOST_TEST((co_await store.dead_letters(0, 10)).empty());
  BOOST_TEST((co_await store.stats()).dead == 0u);
  BOOST_TEST((co_await store.get("waiting")).has_value());
}

}  // namespace

BOOST_AUTO_TEST_CASE(replay_and_purge_dead_letters) {
  fixture f;
  f.run(replay_and_purge(f));
}

namespace {

asio::awaitable<void> stats_count_each_place(fixture& f) {
  auto& store = f.store;
  co_await kill(f, "dead");
  co_await store.schedule(make_task("running", t0));
  BOOST_TEST((co_await claim_all(store)).tasks.size() == 1u);
  co_await store.schedule(make_task("due-1", t0 - 1s));
  co_await store.schedule(make_task("due-2", t0));
  co_await store.schedule(make_task("future", t0 + 1us));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 3u);
  BOOST_TEST(stats.due_now == 2u);
  BOOST_TEST(stats.in_flight == 1u);
  BOOST_TEST(stats.dead == 1u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(stats_count_scheduled_due_in_flight_and_dead) {
  fixture f(3);
  f.run(stats_count_each_place(f));
}

namespace {

asio::awaitable<void> cancel_and_reschedule(fixture& f) {
  auto& store = f.store;
  co_await store.schedule(make_task("running", t0));
  const auto run = co_await claim_all(store);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  co_await kill(f, "dead");
  co_await store.schedule(make_task("first", t0 + 1s));
  co_await store.schedule(make_task("second", t0 + 2s));
  co_await store.schedule(make_task("third", t0 + 3s));

  // reschedule moves waiting tasks only.
  BOOST_TEST(co_await store.reschedule("third", t0 + 500ms));
  const std::vector<std::string> order = {"third", "first", "second"};
  BOOST_TEST(ids_of(co_await store.browse(0, 10)) == order, boost::test_tools::per_element());
  BOOST_TEST(((co_await store.get("third"))->due == t0 + 500ms));
  BOOST_TEST(!(co_await store.reschedule("running", t0 + 1h)));
  BOOST_TEST(!(co_await store.reschedule("dead", t0 + 1h)));
  BOOST_TEST(!(co_await store.reschedule("unknown", t0 + 1h)));
  BOOST_TEST(((co_await store.get("running"))->state == sched::task_state::in_flight));

  // cancel removes from anywhere.
  BOOST_TEST(co_await store.cancel("first"));
  BOOST_TEST(!(co_await store.get("first")).has_value());
  BOOST_TEST(co_await store.cancel("running"));
  auto late_ack = completions("running", run.tasks[0].token);
  BOOST_TEST(co_await store.ack(0, late_ack) == 0u);
  BOOST_TEST(!(co_await store.get("running")).has_value());
  BOOST_TEST(co_await store.cancel("dead"));
  BOOST_TEST(!(co_await store.cancel("dead")));
  BOOST_TEST(!(co_await store.cancel("unknown")));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 2u);
  BOOST_TEST(stats.in_flight == 0u);
  BOOST_TEST(stats.dead == 0u);

  // A cancelled task is never claimed.
  f.clock.now = t0 + 10s;
  const std::vector<std::string> remaining = {"third", "second"};
  BOOST_TEST(ids_of((co_await claim_all(store)).tasks) == remaining,
             boost::test_tools::per_element());
}

}  // namespace

BOOST_AUTO_TEST_CASE(cancel_and_reschedule_semantics) {
  fixture f;
  f.run(cancel_and_reschedule(f));
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

  // Two shards: pick ids by their shard.
  std::vector<std::string> in_shard[2];
  for (int i = 0; in_shard[0].size() < 4 || in_shard[1].size() < 4; ++i) {
    const std::string id = "t" + std::to_string(i);
    in_shard[store.shard_of(id)].push_back(id);
  }
  const auto& s0 = in_shard[0];

  co_await store.schedule(make_task(s0[0], t0 + 10s));  // empty shard: becomes the head
  co_await yield();
  BOOST_TEST(woken == std::vector<unsigned>{0}, boost::test_tools::per_element());

  co_await store.schedule(make_task(s0[1], t0 + 20s));  // behind the head
  co_await yield();
  BOOST_TEST(woken.size() == 1u);

  co_await store.schedule(make_task(s0[2], t0 + 5s));  // ahead of the head
  co_await yield();
  BOOST_TEST(woken.size() == 2u);

  BOOST_TEST(co_await store.reschedule(s0[1], t0 + 1s));  // moved ahead
  co_await yield();
  BOOST_TEST(woken.size() == 3u);

  BOOST_TEST(co_await store.reschedule(s0[1], t0 + 30s));  // moved behind
  co_await yield();
  BOOST_TEST(woken.size() == 3u);

  co_await store.schedule(make_task(in_shard[1][0], t0 + 60s));  // head of the other shard
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
  co_await store.schedule(make_task(s0[3], t0 - 1h));
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
