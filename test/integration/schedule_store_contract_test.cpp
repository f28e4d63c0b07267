// The store contract, one source run against both stores: claim order, fencing (stale
// tokens refused after an expiry, a re-schedule or a cancel), lease expiry and extension,
// retries and dead-lettering, dead-letter caps, replay/purge, recurring acks, stats.
//
// Times are relative to the store's own clock: the memory store's is a manual clock that
// `pass()` moves; the Redis store's is the server's TIME, so `pass()` waits that long for
// real and checks on times computed by the server are bounded by the store's clock read
// before and after the call (exact for the memory store).
//
// Redis-only below: tokens stay unique when the server rolls back (DUMP/RESTORE), and the
// namespace's shard count stored in Redis. Memory-only internals (the clock hook, watch_wakes
// delivery on the caller's executor, shard hashing) stay in
// test/unit/schedule_memory_store_test.cpp.
#include <algorithm>
#include <atomic>
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/schedule_builders.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::email_task;

/// One redis-server for the whole executable; each harness uses its own namespace.
corvo::test::redis_server& shared_server() {
  static corvo::test::redis_server server;
  return server;
}

std::string fresh_namespace() {
  static std::atomic<int> counter{0};
  return "contract" + std::to_string(++counter);
}

struct store_limits {
  unsigned shards = 1;
  std::size_t dead_max_count = 100'000;
  std::chrono::seconds dead_max_age = std::chrono::hours(24);
};

/// The memory store with a manual clock.
struct memory_harness {
  /// How long before its due time a claim's next_due names a task scheduled well ahead.
  static constexpr std::chrono::milliseconds compact_lead{0};
  static constexpr bool real_time = false;
  asio::io_context context;
  sched::time_point clock_now = sched::now();
  sched::memory_store store;

  explicit memory_harness(store_limits l = {})
      : store(context.get_executor(), l.shards,
              sched::dead_letter_limits{l.dead_max_count, l.dead_max_age}) {
    store.set_clock([this] { return clock_now; });
  }
  asio::awaitable<sched::time_point> store_now() { co_return clock_now; }
  asio::awaitable<void> pass(std::chrono::milliseconds d) {
    clock_now += d;
    co_return;
  }
  void stop() {}
};

/// The Redis store on the shared server; its clock is the server's TIME. `CompatibleLeases`:
/// redis_store_options::compatible_leases (leases written into the records); `CompactAll`:
/// compact_after 0 (every task scheduled ahead of now waits in the compact tier until a claim
/// promotes it).
template <bool CompatibleLeases, bool CompactAll = false>
struct basic_redis_harness {
  static constexpr bool real_time = true;
  /// How long before its due time a claim's next_due names a task scheduled well ahead (the
  /// compact tier's move into the due sets, compact_after before it).
  static constexpr std::chrono::milliseconds compact_lead{CompactAll ? 0 : 60'000};
  asio::io_context context;
  redis::client conn;
  sched::redis_store store;

  explicit basic_redis_harness(store_limits l = {})
      : conn(context.get_executor(), redis::client_config::from_url(shared_server().url())),
        store(conn, redis::client_config::from_url(shared_server().url()),
              sched::redis_store_options{
                  .name_space = fresh_namespace(),
                  .shards = l.shards,
                  .dead_max_count = l.dead_max_count,
                  .dead_max_age = l.dead_max_age,
                  .compatible_leases = CompatibleLeases,
                  .compact_after = CompactAll ? std::chrono::milliseconds::zero()
                                              : std::chrono::milliseconds(60'000)}) {
    asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  }
  asio::awaitable<sched::time_point> store_now() {
    redis::request req;
    req.push("TIME");
    redis::response<std::vector<std::string>> resp;
    co_await conn.exec(req, resp);
    const auto& t = std::get<0>(resp).value();
    co_return sched::time_point(std::chrono::seconds(std::stoll(t.at(0))) +
                                std::chrono::microseconds(std::stoll(t.at(1))));
  }
  asio::awaitable<void> pass(std::chrono::milliseconds d) { co_await corvo::sleep_for(d); }
  void stop() { conn.cancel(); }
};

using redis_harness = basic_redis_harness<false>;
/// Every contract case runs on the Redis store with both kinds of lease, and with every task
/// scheduled ahead waiting in the compact tier.
using both_stores = boost::mpl::list<memory_harness, redis_harness, basic_redis_harness<true>,
                                     basic_redis_harness<false, true>>;

template <class Harness, class Scenario>
void run_scenario(Harness& h, Scenario scenario) {
  corvo::test::run(h.context, scenario(h), [&] { h.stop(); });
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

// Expected id lists (named: GCC 12 mishandles braced temporaries in coroutines).
const std::vector<std::string> expect_ab{"a", "b"}, expect_cnow{"c", "now"},
    expect_fragile{"fragile"}, expect_d4d3d2{"d4", "d3", "d2"}, expect_d3{"d3"},
    expect_fresh{"fresh"}, expect_a{"a"}, expect_thirdfirstsecond{"third", "first", "second"};

using corvo::test::completions;
using corvo::test::failing;
using corvo::test::lease_refs;

bool within(sched::time_point t, sched::time_point low, sched::time_point high) {
  return low <= t && t <= high;
}

// ---- scenarios -----------------------------------------------------------------------------

template <class H>
asio::awaitable<void> claim_in_due_order(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("c", t0 - 1s));
  co_await store.schedule(email_task("a", t0 - 3s));
  co_await store.schedule(email_task("later", t0 + 1h));
  co_await store.schedule(email_task("b", t0 - 2s));
  co_await store.schedule(email_task("now", t0));

  const auto first = co_await store.claim(0, 2, 10s);
  BOOST_TEST(ids_of(first.tasks) == expect_ab, boost::test_tools::per_element());
  BOOST_TEST(first.tasks[0].work.attempts == 1u);
  BOOST_TEST((first.tasks[0].work.due == t0 - 3s));
  BOOST_TEST((first.tasks[0].work.state == sched::task_state::in_flight));
  BOOST_TEST(first.tasks[0].token != first.tasks[1].token);
  BOOST_TEST((first.store_now >= t0));
  const auto rest = co_await store.claim(0, 10, 10s);
  BOOST_TEST(ids_of(rest.tasks) == expect_cnow, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(rest.next_due.has_value());
  BOOST_TEST((*rest.next_due == t0 + 1h - h.compact_lead));
  BOOST_TEST_REQUIRE(rest.next_lease_expiry.has_value());
  BOOST_TEST(within(*rest.next_lease_expiry, first.store_now + 10s, rest.store_now + 10s));
  std::set<std::string> tokens;
  for (const auto& c : first.tasks)
    tokens.insert(c.token);
  for (const auto& c : rest.tasks)
    tokens.insert(c.token);
  BOOST_TEST(tokens.size() == 4u);
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.in_flight == 4u);
  BOOST_TEST(stats.scheduled == 1u);
  BOOST_TEST(stats.due_now == 0u);
}

template <class H>
asio::awaitable<void> expired_lease_is_claimed_again(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("job", t0));
  const auto first = co_await store.claim(0, 10, 300ms);
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  auto got1 = co_await store.claim(0, 10, 300ms);
  BOOST_TEST(got1.tasks.empty());  // leased
  co_await h.pass(400ms);
  const auto second = co_await store.claim(0, 10, 300ms);
  BOOST_TEST_REQUIRE(second.tasks.size() == 1u);
  BOOST_TEST(second.tasks[0].work.attempts == 2u);  // the dead worker's try counts
  BOOST_TEST(second.tasks[0].token != first.tasks[0].token);

  // The first holder is fenced off: ack, nack and extend are refused.
  auto arg1 = completions("job", first.tasks[0].token);
  auto got2 = co_await store.ack(0, std::move(arg1));
  BOOST_TEST(got2 == 0u);
  auto arg2 = failing("job", first.tasks[0].token, "late", 0us);
  auto got3 = co_await store.nack(0, std::move(arg2));
  BOOST_TEST(!got3);
  auto arg3 = lease_refs("job", first.tasks[0].token);
  auto got4 = co_await store.extend(0, std::move(arg3), 10s);
  BOOST_TEST((got4 == std::vector<bool>{false}));
  auto arg4 = completions("job", second.tasks[0].token);
  auto got5 = co_await store.ack(0, std::move(arg4));
  BOOST_TEST(got5 == 1u);
  auto arg5 = completions("job", second.tasks[0].token);
  auto got6 = co_await store.ack(0, std::move(arg5));
  BOOST_TEST(got6 == 0u);
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.in_flight == 0u);
  BOOST_TEST(stats.scheduled == 0u);
  auto got7 = co_await store.get("job");
  BOOST_TEST(!got7.has_value());
}

template <class H>
asio::awaitable<void> extend_keeps_the_lease(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("slow", t0));
  co_await store.schedule(email_task("other", t0));
  const auto run = co_await store.claim(0, 10, 600ms);
  BOOST_TEST_REQUIRE(run.tasks.size() == 2u);
  co_await h.pass(300ms);
  auto leases = lease_refs(run.tasks[0].work.id, run.tasks[0].token);
  leases.push_back(lease_refs(run.tasks[1].work.id, "bogus")[0]);
  const auto before = co_await h.store_now();
  auto got8 = co_await store.extend(0, leases, 600ms);
  BOOST_TEST((got8 == std::vector<bool>{true, false}));  // renewed; a bogus token is not held
  const auto after = co_await h.store_now();
  co_await h.pass(400ms);  // the other lease expired, the extended one holds
  const auto again = co_await store.claim(0, 10, 600ms);
  const std::vector<std::string> reclaimed{run.tasks[1].work.id};
  BOOST_TEST(ids_of(again.tasks) == reclaimed, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(again.next_lease_expiry.has_value());
  BOOST_TEST(within(*again.next_lease_expiry, before + 600ms, after + 600ms));
}

template <class H>
asio::awaitable<void> rescheduling_fences_off_the_run_in_flight(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("job", t0));
  const auto run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  co_await store.schedule(email_task("job", t0 + 1h, 2));  // the new version replaces it
  auto arg6 = completions("job", run.tasks[0].token);
  auto got9 = co_await store.ack(0, std::move(arg6));
  BOOST_TEST(got9 == 0u);
  auto arg7 = lease_refs("job", run.tasks[0].token);
  auto got10 = co_await store.extend(0, std::move(arg7), 10s);
  BOOST_TEST((got10 == std::vector<bool>{false}));
  auto late = failing("job", run.tasks[0].token, "late", std::nullopt);
  const auto late_nack = co_await store.nack(0, std::move(late));
  BOOST_TEST(!late_nack);
  const auto got = co_await store.get("job");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST((got->state == sched::task_state::scheduled));
  BOOST_TEST((got->due == t0 + 1h));
  BOOST_TEST(got->payload == boost::json::value(2));
  BOOST_TEST(got->attempts == 0u);
  auto got11 = co_await store.stats();
  BOOST_TEST(got11.in_flight == 0u);
}

template <class H>
asio::awaitable<void> nack_retries_then_dead_letters(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("fragile", t0));
  auto run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  const auto before = co_await h.store_now();
  auto arg8 = failing("fragile", run.tasks[0].token, "boom\nline two", 300ms);
  auto got12 = co_await store.nack(0, std::move(arg8));
  BOOST_TEST(got12);
  const auto after = co_await h.store_now();
  const auto waiting = co_await store.get("fragile");
  BOOST_TEST_REQUIRE(waiting.has_value());
  BOOST_TEST((waiting->state == sched::task_state::scheduled));
  BOOST_TEST(within(waiting->due, before + 300ms, after + 300ms));
  BOOST_TEST(waiting->attempts == 1u);
  BOOST_TEST(waiting->last_error == "boom line two");
  // The same token cannot fail the task twice.
  auto arg9 = failing("fragile", run.tasks[0].token, "again", std::nullopt);
  auto got13 = co_await store.nack(0, std::move(arg9));
  BOOST_TEST(!got13);

  auto got14 = co_await store.claim(0, 10, 10s);
  BOOST_TEST(got14.tasks.empty());  // backing off
  co_await h.pass(400ms);
  run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.attempts == 2u);
  BOOST_TEST(run.tasks[0].work.last_error == "boom line two");
  auto arg10 = failing("fragile", run.tasks[0].token, "gave up", std::nullopt);
  auto got15 = co_await store.nack(0, std::move(arg10));
  BOOST_TEST(got15);
  const auto dead = co_await store.get("fragile");
  BOOST_TEST_REQUIRE(dead.has_value());
  BOOST_TEST((dead->state == sched::task_state::dead));
  BOOST_TEST(dead->last_error == "gave up");
  BOOST_TEST(dead->attempts == 2u);
  const auto letters = co_await store.dead_letters(0, 10);
  BOOST_TEST(ids_of(letters) == expect_fragile, boost::test_tools::per_element());
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.dead == 1u);
  BOOST_TEST(stats.scheduled == 0u);
  BOOST_TEST(stats.in_flight == 0u);
  auto got16 = co_await store.claim(0, 10, 10s);
  BOOST_TEST(got16.tasks.empty());
}

/// Schedules, claims and dead-letters `id` now.
template <class H>
asio::awaitable<void> kill(H& h, std::string id) {
  const auto at = co_await h.store_now();
  co_await h.store.schedule(email_task(id, at));
  const auto run = co_await h.store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  auto arg11 = failing(id, run.tasks[0].token, "died " + id, std::nullopt);
  auto got17 = co_await h.store.nack(0, std::move(arg11));
  BOOST_TEST(got17);
}

// Limits: 3 entries, 1 s.
template <class H>
asio::awaitable<void> dead_set_is_capped(H& h) {
  auto& store = h.store;
  for (int i = 0; i < 5; ++i) {
    co_await kill(h, "d" + std::to_string(i));
    co_await h.pass(20ms);
  }
  const auto letters = co_await store.dead_letters(0, 10);
  BOOST_TEST(ids_of(letters) == expect_d4d3d2, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(letters.size() == 3u);
  BOOST_TEST(letters[0].last_error == "died d4");
  auto got18 = co_await store.get("d0");
  BOOST_TEST(!got18.has_value());  // dropped entirely
  auto got19 = co_await store.get("d1");
  BOOST_TEST(!got19.has_value());
  auto got20 = co_await store.stats();
  BOOST_TEST(got20.dead == 3u);
  auto got21 = co_await store.dead_letters(1, 1);
  BOOST_TEST(ids_of(got21) == expect_d3, boost::test_tools::per_element());
  // By age: past the limit, the next death drops everything older.
  co_await h.pass(1100ms);
  co_await kill(h, "fresh");
  auto got22 = co_await store.dead_letters(0, 10);
  BOOST_TEST(ids_of(got22) == expect_fresh, boost::test_tools::per_element());
  auto got23 = co_await store.get("d4");
  BOOST_TEST(!got23.has_value());
}

template <class H>
asio::awaitable<void> replay_and_purge(H& h) {
  auto& store = h.store;
  for (const char* id : {"a", "b", "c"}) {
    co_await kill(h, id);
  }
  const auto later = co_await h.store_now() + 1h;
  co_await store.schedule(email_task("waiting", later));

  const auto before = co_await h.store_now();
  auto got24 = co_await store.replay("a");
  BOOST_TEST(got24);
  const auto after = co_await h.store_now();
  const auto replayed = co_await store.get("a");
  BOOST_TEST_REQUIRE(replayed.has_value());
  BOOST_TEST((replayed->state == sched::task_state::scheduled));
  BOOST_TEST(within(replayed->due, before, after));
  BOOST_TEST(replayed->attempts == 0u);
  BOOST_TEST(replayed->last_error == "died a");  // why it had died
  auto got25 = co_await store.replay("a");
  BOOST_TEST(!got25);  // no longer dead
  auto got26 = co_await store.replay("waiting");
  BOOST_TEST(!got26);
  auto got27 = co_await store.replay("unknown");
  BOOST_TEST(!got27);
  const auto run = co_await store.claim(0, 10, 10s);
  BOOST_TEST(ids_of(run.tasks) == expect_a, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.attempts == 1u);

  auto got28 = co_await store.purge("b");
  BOOST_TEST(got28 == 1u);
  auto got29 = co_await store.purge("b");
  BOOST_TEST(got29 == 0u);
  auto got30 = co_await store.get("b");
  BOOST_TEST(!got30.has_value());
  auto got31 = co_await store.purge("waiting");
  BOOST_TEST(got31 == 0u);  // only dead tasks are purged
  auto got32 = co_await store.purge("a");
  BOOST_TEST(got32 == 0u);  // in flight
  co_await kill(h, "d");
  auto got33 = co_await store.purge("");
  BOOST_TEST(got33 == 2u);  // c and d
  auto got34 = co_await store.dead_letters(0, 10);
  BOOST_TEST(got34.empty());
  auto got35 = co_await store.stats();
  BOOST_TEST(got35.dead == 0u);
  auto got36 = co_await store.get("waiting");
  BOOST_TEST(got36.has_value());
}

template <class H>
asio::awaitable<void> cancel_and_reschedule(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("running", t0));
  const auto run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  co_await kill(h, "dead");
  co_await store.schedule(email_task("first", t0 + 1h + 1s));
  co_await store.schedule(email_task("second", t0 + 1h + 2s));
  co_await store.schedule(email_task("third", t0 + 1h + 3s));

  auto got37 = co_await store.reschedule("third", t0 + 1h + 500ms);
  BOOST_TEST(got37);
  auto got38 = co_await store.browse(0, 10);
  BOOST_TEST(ids_of(got38) == expect_thirdfirstsecond, boost::test_tools::per_element());
  auto got39 = co_await store.get("third");
  BOOST_TEST((got39->due == t0 + 1h + 500ms));
  auto got40 = co_await store.reschedule("running", t0 + 2h);
  BOOST_TEST(!got40);
  auto got41 = co_await store.reschedule("dead", t0 + 2h);
  BOOST_TEST(!got41);
  auto got42 = co_await store.reschedule("unknown", t0 + 2h);
  BOOST_TEST(!got42);
  auto got43 = co_await store.get("running");
  BOOST_TEST((got43->state == sched::task_state::in_flight));

  auto got44 = co_await store.cancel("first");
  BOOST_TEST(got44);
  auto got45 = co_await store.get("first");
  BOOST_TEST(!got45.has_value());
  auto got46 = co_await store.cancel("running");
  BOOST_TEST(got46);
  auto arg12 = completions("running", run.tasks[0].token);
  auto got47 = co_await store.ack(0, std::move(arg12));
  BOOST_TEST(got47 == 0u);
  auto got48 = co_await store.get("running");
  BOOST_TEST(!got48.has_value());
  auto got49 = co_await store.cancel("dead");
  BOOST_TEST(got49);
  auto got50 = co_await store.cancel("dead");
  BOOST_TEST(!got50);
  auto got51 = co_await store.cancel("unknown");
  BOOST_TEST(!got51);
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 2u);
  BOOST_TEST(stats.in_flight == 0u);
  BOOST_TEST(stats.dead == 0u);
}

template <class H>
asio::awaitable<void> ack_with_next_due_reschedules(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  auto recurring = email_task("tick", t0);
  recurring.repeat = sched::interval{1h};
  co_await store.schedule(recurring);
  auto run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  // A failed try first, so the reschedule visibly resets attempts and the error.
  auto arg13 = failing("tick", run.tasks[0].token, "flaky", 0us);
  auto got52 = co_await store.nack(0, std::move(arg13));
  BOOST_TEST(got52);
  run = co_await store.claim(0, 10, 10s);
  BOOST_TEST_REQUIRE(run.tasks.size() == 1u);
  BOOST_TEST(run.tasks[0].work.attempts == 2u);
  BOOST_TEST(run.tasks[0].work.last_error == "flaky");
  auto arg14 = completions("tick", run.tasks[0].token, t0 + 1h);
  auto got53 = co_await store.ack(0, std::move(arg14));
  BOOST_TEST(got53 == 1u);
  const auto next = co_await store.get("tick");
  BOOST_TEST_REQUIRE(next.has_value());
  BOOST_TEST((next->state == sched::task_state::scheduled));
  BOOST_TEST((next->due == t0 + 1h));
  BOOST_TEST(next->attempts == 0u);
  BOOST_TEST(next->last_error == "");
  BOOST_TEST((next->repeat == sched::recurrence{sched::interval{1h}}));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 1u);
  BOOST_TEST(stats.due_now == 0u);
  BOOST_TEST(stats.in_flight == 0u);
}

template <class H>
asio::awaitable<void> stats_count_each_place(H& h) {
  auto& store = h.store;
  co_await kill(h, "dead");
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("running", t0));
  auto got54 = co_await store.claim(0, 10, 10s);
  BOOST_TEST(got54.tasks.size() == 1u);
  co_await store.schedule(email_task("due-1", t0 - 1s));
  co_await store.schedule(email_task("due-2", t0));
  co_await store.schedule(email_task("future", t0 + 1h));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 3u);
  BOOST_TEST(stats.due_now == 2u);
  BOOST_TEST(stats.in_flight == 1u);
  BOOST_TEST(stats.dead == 1u);
}

template <class H>
asio::awaitable<void> browse_in_due_order(H& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  // Dues 10 s apart in a scrambled order; two share a due time (ordered by id).
  const std::vector<int> offsets = {7, 3, 9, 0, 5, 1, 8, 2, 6, 4, 11, 10};
  std::set<unsigned> shards_used;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const std::string id = "task-" + std::to_string(offsets[i]);
    shards_used.insert(store.shard_of(id));
    co_await store.schedule(email_task(id, t0 + std::chrono::seconds(10 * offsets[i]), offsets[i]));
  }
  co_await store.schedule(email_task("task-5b", t0 + 50s));
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
  const auto beyond = co_await store.browse(13, 5);
  BOOST_TEST(beyond.empty());

  const auto got = co_await store.get("task-7");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST(got->type == "email");
  BOOST_TEST(got->payload == boost::json::value(7));
  BOOST_TEST((got->due == t0 + 70s));
  BOOST_TEST(got->max_attempts == 3u);
  BOOST_TEST(got->attempts == 0u);
  BOOST_TEST((got->state == sched::task_state::scheduled));
  const auto missing = co_await store.get("nope");
  BOOST_TEST(!missing.has_value());
}

template <class H>
asio::awaitable<void> reject_bad_tasks(H& h) {
  const auto t0 = co_await h.store_now();
  auto no_id = email_task("", t0);
  auto no_type = email_task("x", t0);
  no_type.type.clear();
  auto newline_type = email_task("x", t0);
  newline_type.type = "a\nb";
  std::vector<sched::task*> bad_tasks{&no_id, &no_type, &newline_type};
  for (auto* bad : bad_tasks) {
    bool threw = false;
    try {
      co_await h.store.schedule(*bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    BOOST_TEST(threw);
  }
  const auto stats = co_await h.store.stats();
  BOOST_TEST(stats.scheduled == 0u);
}

asio::awaitable<void> watch_into(sched::store& s, std::vector<unsigned>& woken) {
  std::function<void(unsigned)> record = [&woken](unsigned shard) { woken.push_back(shard); };
  co_await s.watch_wakes(std::move(record));
}

// Once its subscription is in place, watch_wakes() wakes every shard once: a task that landed
// before it (its wake-up published to no one) is claimed then, not after the dispatcher's
// longest sleep. Nothing is scheduled here, so these are the only wake-ups.
template <class H>
asio::awaitable<void> every_shard_is_woken_once_subscribed(H& h) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<unsigned> woken;
  corvo::task_group watch(ex);
  co_await watch.spawn(watch_into(h.store, woken));
  co_await corvo::test::eventually([&] { return woken.size() >= h.store.shards(); }, 5s);
  std::sort(woken.begin(), woken.end());
  std::vector<unsigned> every_shard(h.store.shards());
  std::iota(every_shard.begin(), every_shard.end(), 0u);
  BOOST_TEST(woken == every_shard, boost::test_tools::per_element());
  watch.cancel();
  try {
    co_await watch.join();
  } catch (const std::exception&) {  // operation_aborted: the watch was cancelled
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(store_contract)

BOOST_AUTO_TEST_CASE_TEMPLATE(watching_wakes_every_shard_once_subscribed, H, both_stores) {
  H h(store_limits{.shards = 4});
  run_scenario(h, [](H& x) { return every_shard_is_woken_once_subscribed(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(schedule_get_and_browse_across_shards, H, both_stores) {
  H h(store_limits{.shards = 4});
  run_scenario(h, [](H& x) { return browse_in_due_order(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(invalid_tasks_are_refused, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return reject_bad_tasks(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(claims_due_tasks_in_due_order_with_distinct_tokens, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return claim_in_due_order(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(an_expired_lease_is_claimed_again_and_fences_off_its_holder, H,
                              both_stores) {
  H h;
  run_scenario(h, [](H& x) { return expired_lease_is_claimed_again(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(extend_renews_only_held_leases, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return extend_keeps_the_lease(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(rescheduling_an_id_fences_off_its_run_in_flight, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return rescheduling_fences_off_the_run_in_flight(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(nack_retries_and_then_dead_letters, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return nack_retries_then_dead_letters(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dead_letters_are_capped_by_count_and_age, H, both_stores) {
  H h(store_limits{.shards = 1, .dead_max_count = 3, .dead_max_age = 1s});
  run_scenario(h, [](H& x) { return dead_set_is_capped(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(replay_and_purge_dead_letters, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return replay_and_purge(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(cancel_and_reschedule_semantics, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return cancel_and_reschedule(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(ack_with_next_due_reschedules_a_recurring_task, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return ack_with_next_due_reschedules(x); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(stats_count_scheduled_due_in_flight_and_dead, H, both_stores) {
  H h;
  run_scenario(h, [](H& x) { return stats_count_each_place(x); });
}

BOOST_AUTO_TEST_SUITE_END()

// ---- Redis only ------------------------------------------------------------------------------

namespace {

// The shard's data keys (due, tasks, inflight, lease, dead, seq, then the leased set) as DUMP
// payloads; a missing key is nullopt.
using snapshot = std::vector<std::optional<std::string>>;

asio::awaitable<snapshot> dump_shard(redis::client& conn, std::vector<std::string> keys) {
  snapshot out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    redis::request req;
    req.push("DUMP", keys[i]);
    redis::response<std::optional<std::string>> resp;
    co_await conn.exec(req, resp);
    out.push_back(std::get<0>(resp).value());
  }
  co_return out;
}

// Puts the shard back as it was when dumped: a failover to a replica that had not received
// the last writes, or a restart from an older snapshot / everysec AOF.
asio::awaitable<void> restore_shard(redis::client& conn, std::vector<std::string> keys,
                                    snapshot dumped) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    redis::request req;
    if (dumped[i]) {
      req.push("RESTORE", keys[i], 0, *dumped[i], "REPLACE");
    } else {
      req.push("DEL", keys[i]);
    }
    co_await conn.exec(req);
  }
}

asio::awaitable<void> tokens_survive_a_rollback(redis_harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.store_now();
  co_await store.schedule(email_task("job", t0));
  co_await store.schedule(email_task("warm-up", t0));
  // One claim before the snapshot, so the shard's token counter exists when it is taken.
  const auto warm_up = co_await store.claim(0, 1, 10s);
  BOOST_TEST_REQUIRE(warm_up.tasks.size() == 1u);
  auto keys = store.keys_of(0);
  keys.resize(6);
  keys.push_back(store.leased_key(0));
  const auto before = co_await dump_shard(h.conn, keys);
  const auto first = co_await store.claim(0, 10, 10s);  // the claim the rollback loses
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  co_await restore_shard(h.conn, keys, before);
  const auto second = co_await store.claim(0, 10, 10s);  // the same task, claimed again
  BOOST_TEST_REQUIRE(second.tasks.size() == 1u);
  BOOST_TEST(second.tasks[0].work.id == first.tasks[0].work.id);
  BOOST_TEST(second.tasks[0].token != first.tasks[0].token);
  // The first holder is fenced off; the second holds the lease.
  auto stale_extend = lease_refs(first.tasks[0].work.id, first.tasks[0].token);
  auto stale_extended = co_await store.extend(0, std::move(stale_extend), 10s);
  BOOST_TEST((stale_extended == std::vector<bool>{false}));
  auto stale_ack = completions(first.tasks[0].work.id, first.tasks[0].token);
  auto stale_acked = co_await store.ack(0, std::move(stale_ack));
  BOOST_TEST(stale_acked == 0u);
  auto job_now = co_await store.get("job");
  BOOST_TEST((job_now->state == sched::task_state::in_flight));
  auto current = completions(second.tasks[0].work.id, second.tasks[0].token);
  auto current_acked = co_await store.ack(0, std::move(current));
  BOOST_TEST(current_acked == 1u);
}

asio::awaitable<std::optional<std::string>> get_key(redis::client& conn, std::string key) {
  redis::request req;
  req.push("GET", key);
  redis::response<std::optional<std::string>> resp;
  co_await conn.exec(req, resp);
  co_return std::get<0>(resp).value();
}

asio::awaitable<void> shard_count_is_stored_and_checked(redis_harness& h, std::string ns) {
  auto first = std::make_unique<sched::redis_store>(
      h.conn, redis::client_config::from_url(shared_server().url()),
      sched::redis_store_options{.name_space = ns, .shards = 4});
  const auto t0 = co_await h.store_now();
  co_await first->schedule(email_task("order-1", t0 + 1h));
  // First use wrote the count.
  const auto stored = co_await get_key(h.conn, "{" + ns + "}:shards");
  BOOST_TEST(stored.value_or("<missing>") == "4");

  // Another count is refused with both numbers and the key.
  auto other = std::make_unique<sched::redis_store>(
      h.conn, redis::client_config::from_url(shared_server().url()),
      sched::redis_store_options{.name_space = ns, .shards = 8});
  std::string refused;
  try {
    co_await other->schedule(email_task("order-2", t0 + 1h));
  } catch (const std::exception& e) {
    refused = e.what();
  }
  BOOST_TEST_MESSAGE("refused with: " << refused);
  BOOST_TEST(refused.find("8 shards") != std::string::npos, refused);
  BOOST_TEST(refused.find("4 shards") != std::string::npos, refused);
  BOOST_TEST(refused.find("{" + ns + "}:shards") != std::string::npos, refused);
  auto order_2 = co_await first->get("order-2");
  BOOST_TEST(!order_2.has_value());

  // open() reports the mismatch too (the dispatcher calls it before it starts).
  std::string refused_by_open;
  try {
    co_await other->open();
  } catch (const std::exception& e) {
    refused_by_open = e.what();
  }
  BOOST_TEST(refused_by_open == refused);

  // shards = 0 adopts the namespace's count.
  auto adopting = std::make_unique<sched::redis_store>(
      h.conn, redis::client_config::from_url(shared_server().url()),
      sched::redis_store_options{.name_space = ns, .shards = 0});
  BOOST_TEST(adopting->shards() == 0u);  // unknown until opened
  co_await adopting->open();
  BOOST_TEST(adopting->shards() == 4u);
  BOOST_TEST(adopting->shard_count_key() == "{" + ns + "}:shards");
  const auto found = co_await adopting->get("order-1");
  BOOST_TEST(found.has_value());
  co_await adopting->schedule(email_task("order-3", t0 + 1h));
  auto order_3 = co_await first->get("order-3");
  BOOST_TEST(order_3.has_value());

  // Adopting a namespace nobody has used is refused: there is no count to adopt.
  auto unused = std::make_unique<sched::redis_store>(
      h.conn, redis::client_config::from_url(shared_server().url()),
      sched::redis_store_options{.name_space = ns + "-unused", .shards = 0});
  std::string no_count;
  try {
    co_await unused->open();
  } catch (const std::exception& e) {
    no_count = e.what();
  }
  BOOST_TEST(no_count.find("has no stored shard count") != std::string::npos, no_count);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_store_only)

BOOST_AUTO_TEST_CASE(tokens_stay_unique_when_the_server_rolls_back) {
  redis_harness h;
  corvo::test::run(h.context, tokens_survive_a_rollback(h), [&] { h.stop(); });
}

BOOST_AUTO_TEST_CASE(the_shard_count_is_stored_on_first_use_and_a_mismatch_is_refused) {
  redis_harness h;
  corvo::test::run(h.context, shard_count_is_stored_and_checked(h, fresh_namespace()),
                   [&] { h.stop(); });
}

BOOST_AUTO_TEST_SUITE_END()
