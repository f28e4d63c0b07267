// Hardening of the dispatcher and both stores (issue 14): handlers failing with
// operation_aborted are failures, hung handlers are cancelled at their run timeout, leases
// are renewed while draining and a lost lease cancels its run, a malformed record is
// dead-lettered instead of stalling its shard, and browsing pages through the sets.
#include <algorithm>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <map>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;

namespace {

// What the handlers saw, per task id.
struct tracker {
  std::map<std::string, int> runs;
  std::map<std::string, int> running;
  std::map<std::string, int> max_running;
  std::map<std::string, int> cancelled;
  std::map<std::string, int> finished;
};

// Runs for payload.ms milliseconds (forever when absent), recording concurrency per id and
// whether it saw cancellation.
asio::awaitable<void> slow_run(tracker& k, const claimed_task& t) {
  const auto& id = t.work.id;
  ++k.runs[id];
  const int now_running = ++k.running[id];
  k.max_running[id] = std::max(k.max_running[id], now_running);
  std::chrono::milliseconds length = std::chrono::hours(1);
  if (const auto* o = t.work.payload.if_object(); o != nullptr && o->contains("ms")) {
    length = std::chrono::milliseconds(json::value_to<int>(o->at("ms")));
  }
  std::exception_ptr failed;
  try {
    co_await corvo::sleep_for(length);
  } catch (...) {
    failed = std::current_exception();
  }
  --k.running[id];
  if (failed) {
    if (corvo::is_operation_aborted(failed)) {
      ++k.cancelled[id];
    }
    std::rethrow_exception(failed);
  }
  ++k.finished[id];
}

struct slow {
  tracker* k;
  asio::awaitable<void> operator()(const claimed_task& t) const { return slow_run(*k, t); }
};

// Fails the way a handler whose own I/O was cancelled does.
asio::awaitable<void> aborting_run(tracker& k, const claimed_task& t) {
  ++k.runs[t.work.id];
  throw boost::system::system_error(asio::error::operation_aborted);
  co_return;
}

struct aborting {
  tracker* k;
  asio::awaitable<void> operator()(const claimed_task& t) const { return aborting_run(*k, t); }
};

json::value run_for(int ms) {
  json::object o;
  o["ms"] = ms;
  return o;
}

task make_task(std::string id, std::string type, json::value payload = {}) {
  task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.due = now();
  t.payload = std::move(payload);
  return t;
}

template <class Done>
asio::awaitable<bool> wait_until(Done done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return false;
    }
    co_await corvo::sleep_for(2ms);
  }
  co_return true;
}

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

// One dispatcher running in its own group, so a test can stop it alone.
struct running_dispatcher {
  std::unique_ptr<dispatcher> d;
  std::unique_ptr<corvo::task_group> group;

  asio::awaitable<void> start(store& s, sink& k, dispatcher_options o) {
    d = std::make_unique<dispatcher>(s, k, o);
    group = std::make_unique<corvo::task_group>(co_await asio::this_coro::executor);
    co_await group->spawn(run_dispatcher(*d));
  }
  // Cancels run() and waits until it has drained and returned.
  asio::awaitable<void> stop() {
    if (!group)
      co_return;
    group->cancel();
    try {
      co_await group->join();
    } catch (const boost::system::system_error&) {
    }
    group.reset();
  }
};

dispatcher_options quick_options() {
  dispatcher_options o;
  o.max_in_flight = 8;
  o.claim_batch = 8;
  o.lease = 5000ms;
  o.max_sleep = 50ms;
  o.retry_backoff = {5ms, 20ms};
  o.drain_timeout = 2000ms;
  return o;
}

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

// The state of `id` in `s`.
asio::awaitable<task_state> state_of(store& s, std::string id) {
  const auto t = co_await s.get(std::move(id));
  co_return t ? t->state : task_state::unknown;
}

// ---- item 2: operation_aborted from a handler is a failure -------------------------------

struct abort_outcome {
  bool dead = false;
  int runs_when_dead = 0;
  std::string reason;
  dispatcher_stats stats;
};

asio::awaitable<abort_outcome> scenario_handler_aborts(store& s, tracker& k) {
  handler_registry handlers;
  handlers.on_task("aborting", aborting{&k});
  direct_sink sink(handlers);
  running_dispatcher d;
  co_await d.start(s, sink, quick_options());
  auto t = make_task("aborts-1", "aborting");
  t.max_attempts = 3;
  co_await s.schedule(t);
  abort_outcome out;
  const auto limit = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < limit && !out.dead) {
    out.dead = co_await state_of(s, "aborts-1") == task_state::dead;
    co_await corvo::sleep_for(5ms);
  }
  out.runs_when_dead = k.runs["aborts-1"];
  co_await corvo::sleep_for(0ms);
  co_await d.stop();
  out.stats = d.d->stats();
  if (const auto dead = co_await s.get("aborts-1"))
    out.reason = dead->last_error;
  co_return out;
}

template <class Backend>
void check_handler_aborts(Backend& b) {
  tracker k;
  const auto out = corvo::test::run(b.ctx, scenario_handler_aborts(b.store, k), [&] { b.stop(); });
  BOOST_TEST(out.dead);
  BOOST_TEST(out.runs_when_dead == 3);
  BOOST_TEST(k.runs["aborts-1"] == 3);  // nothing ran after it was dead
  BOOST_TEST(out.stats.retried == 2u);
  BOOST_TEST(out.stats.dead_lettered == 1u);
  BOOST_TEST(out.reason.find("Operation canceled") != std::string::npos, out.reason);
}

// ---- item 1: a hung handler is cancelled at its run timeout ------------------------------

struct timeout_outcome {
  bool both_dead = false;
  std::optional<task> own, by_default;
  dispatcher_stats stats;
};

asio::awaitable<timeout_outcome> scenario_hung_handlers(store& s, tracker& k) {
  handler_registry handlers;
  handlers.on_task("slow", slow{&k});  // no "ms": never returns unless cancelled
  direct_sink sink(handlers);
  auto o = quick_options();
  o.run_timeout = 250ms;
  running_dispatcher d;
  co_await d.start(s, sink, o);
  auto own = make_task("hang-own", "slow");
  own.timeout = 150ms;
  own.max_attempts = 2;
  co_await s.schedule(own);
  auto by_default = make_task("hang-default", "slow");
  by_default.max_attempts = 3;
  co_await s.schedule(by_default);
  timeout_outcome out;
  const auto limit = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < limit && !out.both_dead) {
    out.both_dead = co_await state_of(s, "hang-own") == task_state::dead &&
                    co_await state_of(s, "hang-default") == task_state::dead;
    co_await corvo::sleep_for(5ms);
  }
  co_await d.stop();
  out.stats = d.d->stats();
  out.own = co_await s.get("hang-own");
  out.by_default = co_await s.get("hang-default");
  co_return out;
}

template <class Backend>
void check_hung_handlers(Backend& b) {
  tracker k;
  const auto out = corvo::test::run(b.ctx, scenario_hung_handlers(b.store, k), [&] { b.stop(); });
  BOOST_TEST(out.both_dead);
  BOOST_TEST(k.runs["hang-own"] == 2);
  BOOST_TEST(k.cancelled["hang-own"] == 2);
  BOOST_TEST(k.runs["hang-default"] == 3);
  BOOST_TEST(k.cancelled["hang-default"] == 3);
  BOOST_REQUIRE(out.own);
  BOOST_REQUIRE(out.by_default);
  BOOST_TEST(out.own->last_error == "run timed out after 150 ms");
  BOOST_TEST(out.by_default->last_error == "run timed out after 250 ms");
  BOOST_TEST((out.own->timeout == std::optional<std::chrono::milliseconds>(150ms)));
  BOOST_TEST(!out.by_default->timeout.has_value());
  BOOST_TEST(out.stats.timed_out == 5u);
  BOOST_TEST(out.stats.retried == 3u);
  BOOST_TEST(out.stats.dead_lettered == 2u);
  BOOST_TEST(out.stats.lease_lost == 0u);
}

// ---- item 1 (store level): the claim dead-letters after max_attempts lease expiries ------

struct expiry_outcome {
  std::size_t first = 0, second = 0, third = 0;
  std::string error_after_one;
  std::uint32_t attempts_on_second = 0;
  std::optional<task> dead;
};

asio::awaitable<expiry_outcome> scenario_lease_expiries(store& s) {
  auto t = make_task("dies", "slow");
  t.max_attempts = 2;
  co_await s.schedule(t);
  const auto shard = s.shard_of("dies");
  expiry_outcome out;
  out.first = (co_await s.claim(shard, 10, 20ms)).tasks.size();  // the worker "dies"
  co_await corvo::sleep_for(40ms);
  const auto second = co_await s.claim(shard, 10, 20ms);
  out.second = second.tasks.size();
  if (!second.tasks.empty()) {
    out.error_after_one = second.tasks[0].work.last_error;
    out.attempts_on_second = second.tasks[0].work.attempts;
  }
  co_await corvo::sleep_for(40ms);
  out.third = (co_await s.claim(shard, 10, 20ms)).tasks.size();
  out.dead = co_await s.get("dies");
  co_return out;
}

template <class Backend>
void check_lease_expiries(Backend& b) {
  const auto out = corvo::test::run(b.ctx, scenario_lease_expiries(b.store), [&] { b.stop(); });
  BOOST_TEST(out.first == 1u);
  BOOST_TEST(out.second == 1u);
  BOOST_TEST(out.error_after_one == "lease expired 1 times (worker died or hung)");
  BOOST_TEST(out.attempts_on_second == 2u);
  BOOST_TEST(out.third == 0u);
  BOOST_REQUIRE(out.dead);
  BOOST_TEST((out.dead->state == task_state::dead));
  BOOST_TEST(out.dead->attempts == 2u);
  BOOST_TEST(out.dead->last_error == "lease expired 2 times (worker died or hung)");
}

// ---- item 3: leases renewed while draining ----------------------------------------------

struct drain_outcome {
  bool all_ran = false;
  bool settled = false;
  dispatcher_stats a, b;
};

asio::awaitable<drain_outcome> scenario_drain_keeps_leases(store& s, tracker& k) {
  handler_registry handlers;
  handlers.on_task("slow", slow{&k});
  direct_sink sink(handlers);
  auto o = quick_options();
  o.lease = 300ms;
  o.drain_timeout = 2000ms;
  o.max_in_flight = 4;
  running_dispatcher a, b;
  co_await a.start(s, sink, o);
  for (int i = 0; i < 4; ++i) {
    co_await s.schedule(make_task("drained-" + std::to_string(i), "slow", run_for(1000)));
  }
  drain_outcome out;
  out.all_ran = co_await wait_until([&] { return k.runs.size() == 4; }, 5s);
  // All four run on A; B starts with free slots, then A is stopped mid-run.
  o.max_in_flight = 8;
  co_await b.start(s, sink, o);
  co_await a.stop();
  out.settled = co_await wait_until(
      [&] {
        int done = 0;
        for (const auto& [id, n] : k.finished)
          done += n;
        return done >= 4;
      },
      5s);
  // Give B a lease period to take over a task whose lease A lost (it must not).
  for (bool idle = false; !idle;) {
    const auto stats = co_await s.stats();
    idle = stats.in_flight == 0 && stats.scheduled == 0;
    if (!idle)
      co_await corvo::sleep_for(5ms);
  }
  co_await b.stop();
  out.a = a.d->stats();
  out.b = b.d->stats();
  co_return out;
}

template <class Backend>
void check_drain_keeps_leases(Backend& b) {
  tracker k;
  const auto out =
      corvo::test::run(b.ctx, scenario_drain_keeps_leases(b.store, k), [&] { b.stop(); });
  BOOST_TEST(out.all_ran);
  BOOST_TEST(out.settled);
  BOOST_TEST(k.runs.size() == 4u);
  for (const auto& [id, n] : k.max_running) {
    BOOST_TEST(n == 1, id << " ran " << n << " times at once");
    BOOST_TEST(k.runs[id] == 1, id << " ran " << k.runs[id] << " times");
  }
  BOOST_TEST(out.a.succeeded == 4u);
  BOOST_TEST(out.a.lease_lost == 0u);
  BOOST_TEST(out.b.claimed == 0u);
}

// ---- item 3: a lost lease cancels its run -----------------------------------------------

struct lost_outcome {
  bool cut = false;
  std::chrono::milliseconds cancel_to_cut{};
  std::chrono::milliseconds upsert_to_cut{};
  bool new_version_ran = false;
  dispatcher_stats stats;
};

asio::awaitable<lost_outcome> scenario_lost_lease(store& s, tracker& k) {
  handler_registry handlers;
  handlers.on_task("slow", slow{&k});
  direct_sink sink(handlers);
  auto o = quick_options();
  o.lease = 600ms;
  running_dispatcher d;
  co_await d.start(s, sink, o);
  co_await s.schedule(make_task("cut-by-cancel", "slow", run_for(5000)));
  co_await s.schedule(make_task("cut-by-upsert", "slow", run_for(5000)));
  lost_outcome out;
  BOOST_REQUIRE(co_await wait_until(
      [&] { return k.running["cut-by-cancel"] == 1 && k.running["cut-by-upsert"] == 1; }, 5s));
  const auto changed = std::chrono::steady_clock::now();
  BOOST_TEST(co_await s.cancel("cut-by-cancel"));
  co_await s.schedule(make_task("cut-by-upsert", "slow", run_for(10)));
  std::optional<std::chrono::steady_clock::time_point> cancel_cut, upsert_cut;
  const auto limit = changed + 3s;
  while (std::chrono::steady_clock::now() < limit && !(cancel_cut && upsert_cut)) {
    if (!cancel_cut && k.cancelled["cut-by-cancel"] == 1)
      cancel_cut = std::chrono::steady_clock::now();
    if (!upsert_cut && k.cancelled["cut-by-upsert"] == 1)
      upsert_cut = std::chrono::steady_clock::now();
    co_await corvo::sleep_for(2ms);
  }
  out.cut = cancel_cut && upsert_cut;
  if (out.cut) {
    out.cancel_to_cut =
        std::chrono::duration_cast<std::chrono::milliseconds>(*cancel_cut - changed);
    out.upsert_to_cut =
        std::chrono::duration_cast<std::chrono::milliseconds>(*upsert_cut - changed);
  }
  out.new_version_ran = co_await wait_until([&] { return k.finished["cut-by-upsert"] == 1; }, 3s);
  co_await wait_until([&] { return d.d->stats().succeeded == 1; }, 3s);
  co_await d.stop();
  out.stats = d.d->stats();
  co_return out;
}

template <class Backend>
void check_lost_lease(Backend& b) {
  tracker k;
  const auto out = corvo::test::run(b.ctx, scenario_lost_lease(b.store, k), [&] { b.stop(); });
  BOOST_TEST(out.cut, "the runs whose lease was lost were not cancelled within 3 s");
  // Noticed at the next renewal: within a lease period (renewals every lease/3).
  BOOST_TEST(out.cancel_to_cut.count() < 600, out.cancel_to_cut.count() << " ms");
  BOOST_TEST(out.upsert_to_cut.count() < 600, out.upsert_to_cut.count() << " ms");
  BOOST_TEST(out.new_version_ran);
  BOOST_TEST(k.runs["cut-by-cancel"] == 1);
  BOOST_TEST(k.runs["cut-by-upsert"] == 2);  // the old version (cut), the new one
  BOOST_TEST(k.cancelled["cut-by-cancel"] == 1);
  BOOST_TEST(k.cancelled["cut-by-upsert"] == 1);
  BOOST_TEST(out.stats.succeeded == 1u);
  BOOST_TEST(out.stats.retried == 0u);
  BOOST_TEST(out.stats.dead_lettered == 0u);
  BOOST_TEST(out.stats.lease_lost == 2u);
}

// ---- item 6: a malformed record is dead-lettered, the shard goes on ----------------------

// Ids of shard `shard`.
std::vector<std::string> ids_in_shard(const store& s, unsigned shard, const std::string& prefix,
                                      std::size_t count) {
  std::vector<std::string> ids;
  for (int i = 0; ids.size() < count; ++i) {
    auto id = prefix + std::to_string(i);
    if (s.shard_of(id) == shard)
      ids.push_back(std::move(id));
  }
  return ids;
}

struct malformed_outcome {
  bool good_ran = false;
  bool both_dead = false;
  std::vector<task> dead;
  dispatcher_stats stats;
};

asio::awaitable<malformed_outcome> scenario_malformed(redis_backend& b, tracker& k) {
  auto& s = b.store;
  const auto ids = ids_in_shard(s, 2, "bad-", 2);
  const auto keys = s.keys_of(2);
  const auto due = std::to_string(now().time_since_epoch().count());
  redis::request req;
  req.push("HSET", keys[1], ids[0], "no newline at all");
  req.push("ZADD", keys[0], due, ids[0]);
  req.push("HSET", keys[1], ids[1], "x\n5\nslow\n\n\n{}");
  req.push("ZADD", keys[0], due, ids[1]);
  co_await b.conn.exec(req);
  const auto good = ids_in_shard(s, 2, "good-", 1).front();
  co_await s.schedule(make_task(good, "slow", run_for(1)));

  handler_registry handlers;
  handlers.on_task("slow", slow{&k});
  direct_sink sink(handlers);
  running_dispatcher d;
  co_await d.start(s, sink, quick_options());
  malformed_outcome out;
  out.good_ran = co_await wait_until([&] { return k.finished[good] == 1; }, 5s);
  const auto limit = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < limit && !out.both_dead) {
    out.both_dead = co_await state_of(s, ids[0]) == task_state::dead &&
                    co_await state_of(s, ids[1]) == task_state::dead;
    co_await corvo::sleep_for(5ms);
  }
  co_await d.stop();
  out.stats = d.d->stats();
  out.dead = co_await s.dead_letters(0, 10);
  co_return out;
}

// ---- item 6: browse / dead_letters page through the sets ---------------------------------

constexpr int paged_tasks = 2000;

std::string id_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%05d", i);
  return buf;
}

// Fills the store with tasks due in id order, dead-letters every other one, and reads them
// back in pages.
struct paging_outcome {
  std::vector<std::string> all, window, dead_all, dead_window;
  std::size_t empty_limit = 99;
};

std::vector<std::string> ids_of(const std::vector<task>& tasks) {
  std::vector<std::string> out;
  for (const auto& t : tasks)
    out.push_back(t.id);
  return out;
}

asio::awaitable<paging_outcome> scenario_paging(store& s, std::string padding) {
  const auto base = now() + 1h;
  for (int i = 0; i < paged_tasks; ++i) {
    auto t = make_task(id_of(i), "slow", json::string(padding));
    t.due = base + std::chrono::milliseconds(i);
    co_await s.schedule(t);
  }
  paging_outcome out;
  out.all = ids_of(co_await s.browse(0, paged_tasks + 10));
  out.window = ids_of(co_await s.browse(1500, 20));
  out.empty_limit = (co_await s.browse(0, 0)).size();
  // Dead-letter the even ones: make them due now, claim and fail them without retry.
  for (int i = 0; i < paged_tasks; i += 2) {
    BOOST_REQUIRE(co_await s.reschedule(id_of(i), now() - 1s));
  }
  for (unsigned shard = 0; shard < s.shards(); ++shard) {
    for (;;) {
      auto claimed = co_await s.claim(shard, 100, 60s);
      if (claimed.tasks.empty())
        break;
      for (auto& c : claimed.tasks) {
        failure f{c.work.id, c.token, "dead for the paging test", std::nullopt};
        BOOST_REQUIRE(co_await s.nack(shard, f));
      }
    }
  }
  out.dead_all = ids_of(co_await s.dead_letters(0, paged_tasks));
  out.dead_window = ids_of(co_await s.dead_letters(990, 20));
  co_return out;
}

asio::awaitable<paging_outcome> scenario_paging_small_replies(redis_backend& b) {
  redis::request req;
  req.push("CONFIG", "SET", "client-output-buffer-limit", "normal 256kb 256kb 0");
  co_await b.conn.exec(req);
  co_return co_await scenario_paging(b.store, std::string(600, 'x'));
}

void check_paging(const paging_outcome& out) {
  BOOST_REQUIRE(out.all.size() == static_cast<std::size_t>(paged_tasks));
  for (int i = 0; i < paged_tasks; ++i) {
    BOOST_TEST(out.all[i] == id_of(i));
  }
  BOOST_REQUIRE(out.window.size() == 20u);
  for (int i = 0; i < 20; ++i)
    BOOST_TEST(out.window[i] == id_of(1500 + i));
  BOOST_TEST(out.empty_limit == 0u);
  BOOST_TEST(out.dead_all.size() == static_cast<std::size_t>(paged_tasks / 2));
  // Most recent first; dead-lettered in shard order, so compare as sets and check the window
  // is the matching slice.
  std::vector<std::string> sorted = out.dead_all;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < paged_tasks / 2 && i < static_cast<int>(sorted.size()); ++i) {
    BOOST_TEST(sorted[i] == id_of(2 * i));
  }
  BOOST_REQUIRE(out.dead_window.size() == 10u);
  BOOST_TEST(
      std::equal(out.dead_window.begin(), out.dead_window.end(), out.dead_all.begin() + 990));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_provider)
BOOST_AUTO_TEST_CASE(handler_failing_with_operation_aborted_is_a_counted_failure) {
  memory_backend b;
  check_handler_aborts(b);
}
BOOST_AUTO_TEST_CASE(hung_handler_is_cancelled_at_its_timeout_and_dead_lettered) {
  memory_backend b;
  check_hung_handlers(b);
}
BOOST_AUTO_TEST_CASE(the_claim_dead_letters_a_task_whose_last_lease_expired) {
  memory_backend b;
  check_lease_expiries(b);
}
BOOST_AUTO_TEST_CASE(leases_are_renewed_while_draining) {
  memory_backend b;
  check_drain_keeps_leases(b);
}
BOOST_AUTO_TEST_CASE(a_lost_lease_cancels_the_running_handler) {
  memory_backend b;
  check_lost_lease(b);
}
BOOST_AUTO_TEST_CASE(browse_and_dead_letters_page_through_every_shard) {
  memory_backend b;
  check_paging(corvo::test::run(b.ctx, scenario_paging(b.store, std::string(16, 'x'))));
}
BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redis_provider)
BOOST_AUTO_TEST_CASE(handler_failing_with_operation_aborted_is_a_counted_failure) {
  redis_backend b;
  check_handler_aborts(b);
}
BOOST_AUTO_TEST_CASE(hung_handler_is_cancelled_at_its_timeout_and_dead_lettered) {
  redis_backend b;
  check_hung_handlers(b);
}
BOOST_AUTO_TEST_CASE(the_claim_dead_letters_a_task_whose_last_lease_expired) {
  redis_backend b;
  check_lease_expiries(b);
}
BOOST_AUTO_TEST_CASE(leases_are_renewed_while_draining) {
  redis_backend b;
  check_drain_keeps_leases(b);
}
BOOST_AUTO_TEST_CASE(a_lost_lease_cancels_the_running_handler) {
  redis_backend b;
  check_lost_lease(b);
}
BOOST_AUTO_TEST_CASE(a_malformed_record_is_dead_lettered_and_its_shard_goes_on) {
  redis_backend b;
  tracker k;
  const auto out = corvo::test::run(b.ctx, scenario_malformed(b, k), [&] { b.stop(); });
  BOOST_TEST(out.good_ran);
  BOOST_TEST(out.both_dead);
  BOOST_REQUIRE(out.dead.size() == 2u);
  for (const auto& t : out.dead) {
    BOOST_TEST(t.last_error.find("malformed task record") != std::string::npos, t.last_error);
  }
  BOOST_TEST(out.stats.store_errors == 0u);
}
// Every reply bigger than 256 kB kills the connection: only bounded pages get through.
BOOST_AUTO_TEST_CASE(browse_and_dead_letters_page_through_every_shard) {
  redis_backend b;
  const auto out = corvo::test::run(b.ctx, scenario_paging_small_replies(b), [&] { b.stop(); });
  check_paging(out);
}
BOOST_AUTO_TEST_SUITE_END()
