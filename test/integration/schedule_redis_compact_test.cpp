// The Redis store's compact tier (redis_store_options::compact; the prelude's compact tier): a
// task due later than compact_after from now waits in a bucket of its shard chosen by its id,
// `{ns:s}:compact:<b>` (id -> record) and `:due` (id -> due), with `{ns:s}:compact:index`
// (bucket -> its earliest due); a claim moves it into the due sets compact_after before its
// due time, at most about a thousand per claim without taking anything due after what it
// leaves. get, browse, stats, cancel, reschedule and schedule read the tier, also from a store
// that has it off. The store contract test runs every case with compact_after 0 as well.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/eventually.hpp"
#include "support/redis_commands.hpp"
#include "support/schedule_builders.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;
using corvo::test::integer;
using corvo::test::strings;
using corvo::test::text;

namespace {

using corvo::test::email_task;

/// One shard on a fresh namespace: `store` with the tier as configured by `options`, and
/// `plain`, a store on the same namespace with the tier off (as another process may run).
struct harness {
  asio::io_context context;
  std::string name_space = corvo::test::next_schedule_namespace();
  redis::client conn{context.get_executor(),
                     redis::client_config::from_url(corvo::test::shared_schedule_server().url())};
  sched::redis_store store;
  sched::redis_store plain;

  explicit harness(std::chrono::milliseconds compact_after = 60s)
      : store(conn, redis::client_config::from_url(corvo::test::shared_schedule_server().url()),
              sched::redis_store_options{
                  .name_space = name_space, .shards = 1, .compact_after = compact_after}),
        plain(conn, redis::client_config::from_url(corvo::test::shared_schedule_server().url()),
              sched::redis_store_options{.name_space = name_space, .shards = 1, .compact = false}) {
    asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  }
  void stop() { conn.cancel(); }

  std::string prefix() const { return "{" + name_space + ":0}:"; }
  std::string index_key() const { return prefix() + "compact:index"; }
  std::string tasks_key() const { return prefix() + "tasks"; }
  std::string due_key() const { return prefix() + "due"; }

  /// The server's clock.
  asio::awaitable<sched::time_point> server_now() {
    const auto t = co_await strings(conn, "TIME");
    co_return sched::time_point(std::chrono::seconds(std::stoll(t.at(0))) +
                                std::chrono::microseconds(std::stoll(t.at(1))));
  }
  /// Waits until the server's clock has passed `t`.
  asio::awaitable<void> until(sched::time_point t) {
    for (;;) {
      const auto now = co_await server_now();
      if (now > t) {
        break;
      }
      co_await corvo::sleep_for(5ms);
    }
  }
  /// The bucket of `id`, by the rule docs/scheduler.md gives (the first 4 hex digits of the
  /// SHA-1 of the id, modulo 1024).
  asio::awaitable<std::string> bucket_of(const std::string& id) {
    const auto n = co_await integer(
        conn, "EVAL", "return tonumber(string.sub(redis.sha1hex(ARGV[1]), 1, 4), 16) % 1024", "0",
        id);
    co_return prefix() + "compact:" + std::to_string(n);
  }
};

template <class F>
void run_with(harness& h, F f) {
  corvo::test::run(h.context, f(h), [&] { h.stop(); });
}

std::string micros(sched::time_point t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

// Expected orders (at namespace scope: GCC 12 mishandles braced lists in coroutines).
const std::vector<std::string> near_far_farther{"near", "far", "farther"};
const std::vector<std::string> far_farther_near{"far", "farther", "near"};
const std::vector<std::string> b_c{"b", "c"};

std::vector<std::string> ids_of(const std::vector<sched::task>& tasks) {
  std::vector<std::string> out;
  for (const auto& t : tasks) {
    out.push_back(t.id);
  }
  return out;
}

asio::awaitable<void> a_task_due_later_waits_in_its_bucket(harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.server_now();
  const auto near = email_task("near", t0 + 10s);
  const auto far = email_task("far", t0 + 1h, 7);
  co_await store.schedule(near);
  co_await store.schedule(far);
  co_await store.schedule(email_task("farther", t0 + 2h));
  // near waits in the due set; far in its bucket only.
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", h.tasks_key(), "near") == 1);
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", h.tasks_key(), "far") == 0);
  BOOST_TEST(!(co_await text(h.conn, "ZSCORE", h.due_key(), "far")).has_value());
  const auto bucket = co_await h.bucket_of("far");
  auto stored = far;
  stored.occurrence = far.due;
  BOOST_TEST((co_await text(h.conn, "HGET", bucket, "far")).value_or("-") ==
             sched::detail::encode_waiting_record(stored));
  BOOST_TEST((co_await text(h.conn, "ZSCORE", bucket + ":due", "far")).value_or("-") ==
             micros(far.due));
  const auto head = co_await strings(h.conn, "ZRANGE", bucket + ":due", "0", "0");
  BOOST_TEST_REQUIRE(head.size() == 1u);
  const auto b = bucket.substr(bucket.rfind(':') + 1);
  BOOST_TEST((co_await text(h.conn, "ZSCORE", h.index_key(), b)).value_or("-") ==
             (co_await text(h.conn, "ZSCORE", bucket + ":due", head[0])).value_or("+"));
  // Small buckets: Redis's listpack encoding (no allocation per entry).
  BOOST_TEST((co_await text(h.conn, "OBJECT", "ENCODING", bucket)).value_or("-") == "listpack");
  BOOST_TEST((co_await text(h.conn, "OBJECT", "ENCODING", bucket + ":due")).value_or("-") ==
             "listpack");

  // Read back as any waiting task.
  const auto got = co_await store.get("far");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST((got->state == sched::task_state::scheduled));
  BOOST_TEST((got->due == far.due));
  BOOST_TEST((got->occurrence == far.due));
  BOOST_TEST(got->payload == far.payload);
  BOOST_TEST(got->max_attempts == 3u);
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.scheduled == 3u);
  BOOST_TEST(stats.due_now == 0u);
  BOOST_TEST(ids_of(co_await store.browse(0, 10)) == near_far_farther);

  // Add-if-absent keeps it; a schedule replaces it (still one task).
  BOOST_TEST(!(co_await store.schedule_if_absent(email_task("far", t0 + 3h, 8))));
  BOOST_TEST((co_await store.get("far"))->payload.as_int64() == 7);
  co_await store.schedule(email_task("far", t0 + 90min, 9));
  BOOST_TEST((co_await store.get("far"))->payload.as_int64() == 9);
  BOOST_TEST((co_await text(h.conn, "ZSCORE", bucket + ":due", "far")).value_or("-") ==
             micros(t0 + 90min));
  BOOST_TEST((co_await store.stats()).scheduled == 3u);

  // Rescheduled within compact_after: into the due set; later: into its bucket.
  BOOST_TEST(co_await store.reschedule("far", t0 + 20s));
  BOOST_TEST((co_await text(h.conn, "ZSCORE", h.due_key(), "far")).value_or("-") ==
             micros(t0 + 20s));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", bucket, "far") == 0);
  BOOST_TEST(((co_await store.get("far"))->occurrence == t0 + 20s));
  BOOST_TEST(co_await store.reschedule("near", t0 + 5h));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", h.tasks_key(), "near") == 0);
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", co_await h.bucket_of("near"), "near") == 1);
  BOOST_TEST(ids_of(co_await store.browse(0, 10)) == far_farther_near);

  // Cancelled: gone from its bucket, and the index keeps only non-empty buckets.
  BOOST_TEST(co_await store.cancel("farther"));
  BOOST_TEST(!(co_await store.cancel("farther")));
  BOOST_TEST(!(co_await store.get("farther")).has_value());
  BOOST_TEST(co_await store.cancel("near"));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", h.index_key()) == 0);
  BOOST_TEST((co_await store.stats()).scheduled == 1u);
}

BOOST_AUTO_TEST_CASE(a_task_due_later_waits_in_a_bucket_of_its_shard) {
  harness h;
  run_with(h, [](harness& h) { return a_task_due_later_waits_in_its_bucket(h); });
}

asio::awaitable<void> promoted_before_due(harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.server_now();
  const auto due = t0 + 3s;
  co_await store.schedule(email_task("x", due));
  BOOST_TEST_REQUIRE(co_await integer(h.conn, "HEXISTS", h.tasks_key(), "x") == 0);
  // Nothing to claim: the next claim is for its promotion, compact_after (1 s) before it.
  auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST(claimed.tasks.empty());
  BOOST_TEST_REQUIRE(claimed.next_due.has_value());
  BOOST_TEST((*claimed.next_due == due - 1s));
  co_await h.until(due - 1s);
  claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST(claimed.tasks.empty());
  BOOST_TEST_REQUIRE(claimed.next_due.has_value());
  BOOST_TEST((*claimed.next_due == due));
  BOOST_TEST((co_await text(h.conn, "ZSCORE", h.due_key(), "x")).value_or("-") == micros(due));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", h.index_key()) == 0);
  co_await h.until(due);
  claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 1u);
  BOOST_TEST(claimed.tasks[0].work.id == "x");
  BOOST_TEST(claimed.tasks[0].work.attempts == 1u);
  BOOST_TEST((claimed.tasks[0].work.due == due));
}

BOOST_AUTO_TEST_CASE(a_claim_promotes_a_task_compact_after_before_its_due_time) {
  harness h(1s);
  run_with(h, [](harness& h) { return promoted_before_due(h); });
}

asio::awaitable<void> a_backlog_moves_in_steps_in_due_order(harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.server_now();
  const auto base = t0 + 2s;
  constexpr int n = 1500;
  // Due times run against the ids' order, so buckets (by id) hold them out of due order.
  std::map<std::string, sched::time_point> due_of;
  std::vector<sched::task> tasks;
  for (int i = 0; i < n; ++i) {
    auto id = "t" + std::to_string(10000 + i);
    const auto due = base + std::chrono::microseconds(n - i);
    due_of[id] = due;
    tasks.push_back(email_task(id, due));
  }
  co_await store.schedule_many(std::move(tasks));
  BOOST_TEST_REQUIRE(co_await integer(h.conn, "HLEN", h.tasks_key()) == 0);
  co_await h.until(base + std::chrono::microseconds(n));
  // The first claim moves exactly 1000 (their records join the tasks hash) and claims those
  // due before every task it left; the second moves and claims the rest.
  std::vector<sched::claimed_task> all;
  auto first = co_await store.claim(0, 2000, 30s);
  BOOST_TEST(co_await integer(h.conn, "HLEN", h.tasks_key()) == 1000);
  BOOST_TEST_REQUIRE(first.next_due.has_value());
  BOOST_TEST((*first.next_due <= first.store_now));
  auto second = co_await store.claim(0, 2000, 30s);
  for (auto& c : first.tasks) {
    all.push_back(std::move(c));
  }
  for (auto& c : second.tasks) {
    all.push_back(std::move(c));
  }
  BOOST_TEST_REQUIRE(all.size() == static_cast<std::size_t>(n));
  std::map<std::string, int> seen;
  for (std::size_t i = 0; i < all.size(); ++i) {
    ++seen[all[i].work.id];
    BOOST_TEST((all[i].work.due == due_of[all[i].work.id]));
    if (i > 0) {
      BOOST_TEST_INFO("claimed #" << i);
      BOOST_TEST((all[i - 1].work.due < all[i].work.due));
    }
  }
  BOOST_TEST(seen.size() == static_cast<std::size_t>(n));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", h.index_key()) == 0);
}

BOOST_AUTO_TEST_CASE(a_backlog_in_the_tier_is_claimed_in_steps_in_due_order) {
  harness h(0ms);
  run_with(h, [](harness& h) { return a_backlog_moves_in_steps_in_due_order(h); });
}

asio::awaitable<void> browse_merges_the_tiers(harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.server_now();
  // 900 tasks: a third in the due set, the rest in buckets; due times shared by groups of
  // 7, so ties are ordered by id across buckets and across pages.
  std::vector<std::pair<sched::time_point, std::string>> expected;
  std::vector<sched::task> tasks;
  for (int i = 0; i < 900; ++i) {
    const auto id = "b" + std::to_string(1000 + (i * 37) % 900);
    const auto due = i % 3 == 0 ? t0 + 10s + std::chrono::seconds(i / 30)
                                : t0 + 1h + std::chrono::seconds(i / 7);
    expected.emplace_back(due, id);
    tasks.push_back(email_task(id, due));
  }
  std::sort(expected.begin(), expected.end());
  co_await store.schedule_many(std::move(tasks));
  BOOST_TEST_REQUIRE(co_await integer(h.conn, "HLEN", h.tasks_key()) == 300);
  std::vector<sched::task> listed;
  for (std::size_t offset = 0;; offset += 100) {
    auto page = co_await store.browse(offset, 100);
    if (page.empty()) {
      break;
    }
    for (auto& t : page) {
      listed.push_back(std::move(t));
    }
  }
  BOOST_TEST_REQUIRE(listed.size() == expected.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    BOOST_TEST_INFO("entry #" << i);
    BOOST_TEST(listed[i].id == expected[i].second);
    BOOST_TEST((listed[i].due == expected[i].first));
    BOOST_TEST((listed[i].state == sched::task_state::scheduled));
  }
  const auto page = co_await store.browse(555, 3);
  BOOST_TEST_REQUIRE(page.size() == 3u);
  BOOST_TEST(page[0].id == expected[555].second);
  BOOST_TEST(page[2].id == expected[557].second);
}

BOOST_AUTO_TEST_CASE(browse_merges_the_due_sets_and_the_buckets_in_due_order) {
  harness h;
  run_with(h, [](harness& h) { return browse_merges_the_tiers(h); });
}

asio::awaitable<void> the_tier_is_read_with_it_off(harness& h) {
  const auto t0 = co_await h.server_now();
  co_await h.store.schedule(email_task("a", t0 + 1h, 1));
  co_await h.store.schedule(email_task("b", t0 + 1h, 2));
  co_await h.store.schedule(email_task("c", t0 + 2h, 3));
  auto& plain = h.plain;
  const auto a = co_await plain.get("a");
  BOOST_TEST_REQUIRE(a.has_value());
  BOOST_TEST((a->due == t0 + 1h));
  BOOST_TEST(!(co_await plain.schedule_if_absent(email_task("a", t0 + 3h))));
  BOOST_TEST(co_await plain.cancel("a"));
  BOOST_TEST(!(co_await h.store.get("a")).has_value());
  // The plain store's schedule of b replaces the one in the bucket (into the due set).
  co_await plain.schedule(email_task("b", t0 + 3h, 20));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", co_await h.bucket_of("b"), "b") == 0);
  BOOST_TEST((co_await h.store.get("b"))->payload.as_int64() == 20);
  BOOST_TEST((co_await plain.stats()).scheduled == 2u);
  BOOST_TEST(co_await plain.reschedule("c", t0 + 4h));
  BOOST_TEST((co_await text(h.conn, "ZSCORE", h.due_key(), "c")).value_or("-") == micros(t0 + 4h));
  BOOST_TEST(ids_of(co_await plain.browse(0, 10)) == b_c);
}

BOOST_AUTO_TEST_CASE(a_store_with_the_tier_off_reads_and_changes_its_tasks) {
  harness h;
  run_with(h, [](harness& h) { return the_tier_is_read_with_it_off(h); });
}

asio::awaitable<void> long_records_leave_the_listpack(harness& h) {
  const auto t0 = co_await h.server_now();
  // Records of about 115 bytes, longer than the server's default hash-max-listpack-value (64).
  co_await h.store.schedule(email_task("long-1", t0 + 1h));
  auto t = email_task("long-2", t0 + 1h);
  t.payload = boost::json::string(std::string(100, 'x'));
  co_await h.store.schedule(t);
  co_await h.store.schedule(t);
  // Still correct, in Redis's larger encoding.
  BOOST_TEST((co_await h.store.get("long-2"))->payload == t.payload);
  BOOST_TEST(
      (co_await text(h.conn, "OBJECT", "ENCODING", co_await h.bucket_of("long-2"))).value_or("-") ==
      "hashtable");
}

BOOST_AUTO_TEST_CASE(a_record_longer_than_the_servers_listpack_value_is_warned_of_once) {
  std::ostringstream log;
  corvo::log::init({.min_severity = corvo::log::severity::warning, .stream = &log});
  {
    harness h;
    run_with(h, [](harness& h) { return long_records_leave_the_listpack(h); });
  }
  corvo::log::init({});
  const auto text = log.str();
  const std::string warning = "longer than the server's hash-max-listpack-value (64)";
  const auto first = text.find(warning);
  BOOST_TEST(first != std::string::npos, text);
  BOOST_TEST(text.find(warning, first + 1) == std::string::npos, text);
}

// Deduplication of a task waiting in the tier: by id (the window replaces or drops), and by a
// key (the replaced task, another id, leaves its bucket).
asio::awaitable<void> deduplication_reaches_the_tier(harness& h) {
  auto& store = h.store;
  const auto t0 = co_await h.server_now();
  const sched::dedup_options replace{.window = std::chrono::minutes(5)};
  const sched::dedup_options drop{.window = std::chrono::minutes(5),
                                  .mode = sched::dedup_mode::drop};
  BOOST_TEST((co_await store.schedule_deduplicated(email_task("d", t0 + 1h, 1), replace) ==
              sched::dedup_outcome::scheduled));
  BOOST_TEST((co_await store.schedule_deduplicated(email_task("d", t0 + 2h, 2), replace) ==
              sched::dedup_outcome::replaced));
  BOOST_TEST((co_await store.schedule_deduplicated(email_task("d", t0 + 3h, 3), drop) ==
              sched::dedup_outcome::dropped));
  auto d = co_await store.get("d");
  BOOST_TEST_REQUIRE(d.has_value());
  BOOST_TEST(d->payload.as_int64() == 2);
  BOOST_TEST((d->due == t0 + 2h));
  const auto bucket = co_await h.bucket_of("d");
  BOOST_TEST((co_await text(h.conn, "ZSCORE", bucket + ":due", "d")).value_or("-") ==
             micros(t0 + 2h));
  // Replaced within compact_after: out of its bucket, into the due set.
  BOOST_TEST((co_await store.schedule_deduplicated(email_task("d", t0 + 10s, 4), replace) ==
              sched::dedup_outcome::replaced));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", bucket, "d") == 0);
  BOOST_TEST((co_await text(h.conn, "ZSCORE", h.due_key(), "d")).value_or("-") == micros(t0 + 10s));

  const auto first =
      co_await store.schedule_deduplicated_by_key(email_task("k1", t0 + 1h), "user-7", replace);
  BOOST_TEST((first.outcome == sched::dedup_outcome::scheduled));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", co_await h.bucket_of("k1"), "k1") == 1);
  const auto second =
      co_await store.schedule_deduplicated_by_key(email_task("k2", t0 + 2h), "user-7", replace);
  BOOST_TEST((second.outcome == sched::dedup_outcome::replaced));
  BOOST_TEST(second.replaced_id == "k1");
  BOOST_TEST(!(co_await store.get("k1")).has_value());
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", co_await h.bucket_of("k1"), "k1") == 0);
  BOOST_TEST(((co_await store.get("k2"))->state == sched::task_state::scheduled));
  BOOST_TEST((co_await store.stats()).scheduled == 2u);
}

BOOST_AUTO_TEST_CASE(deduplication_replaces_and_drops_tasks_waiting_in_the_tier) {
  harness h;
  run_with(h, [](harness& h) { return deduplication_reaches_the_tier(h); });
}

// `corvo schedule compact --json` on namespace `ns` (one shard) of the shared server (the
// command line built outside the coroutine: GCC 12 and braced lists).
corvo::test::command_result run_compact_command(const std::string& ns) {
  return corvo::test::run_command(
      {corvo::test::corvo_program().string(), "schedule", "compact", "--redis",
       corvo::test::shared_schedule_server().url(), "--namespace", ns, "--shards", "1", "--json"},
      std::chrono::seconds(20));
}

// A namespace used with the tier off (or before it) is moved into it by compact_waiting and
// `corvo schedule compact`: the tasks due later than compact_after, no others, each once.
asio::awaitable<void> waiting_tasks_move_into_the_tier(harness& h) {
  const auto t0 = co_await h.server_now();
  std::vector<sched::task> tasks;
  for (int i = 0; i < 2500; ++i) {
    tasks.push_back(email_task("f" + std::to_string(i), t0 + 1h + std::chrono::milliseconds(i)));
  }
  for (int i = 0; i < 3; ++i) {
    tasks.push_back(email_task("n" + std::to_string(i), t0 + 10s));
  }
  co_await h.plain.schedule_many(std::move(tasks));
  BOOST_TEST_REQUIRE(co_await integer(h.conn, "HLEN", h.tasks_key()) == 2503);
  BOOST_TEST(co_await h.store.compact_waiting() == 2500u);
  BOOST_TEST(co_await integer(h.conn, "HLEN", h.tasks_key()) == 3);
  BOOST_TEST(co_await integer(h.conn, "ZCARD", h.due_key()) == 3);
  BOOST_TEST((co_await h.store.stats()).scheduled == 2503u);
  const auto f7 = co_await h.store.get("f7");
  BOOST_TEST_REQUIRE(f7.has_value());
  BOOST_TEST((f7->due == t0 + 1h + std::chrono::milliseconds(7)));
  BOOST_TEST(co_await integer(h.conn, "HEXISTS", co_await h.bucket_of("f7"), "f7") == 1);
  BOOST_TEST(co_await h.store.compact_waiting() == 0u);

  // For the command (run after this scenario, off the io_context): tasks the plain store adds.
  co_await h.plain.schedule(email_task("late-1", t0 + 2h));
  co_await h.plain.schedule(email_task("late-2", t0 + 3h));
}

BOOST_AUTO_TEST_CASE(waiting_tasks_of_the_due_sets_move_into_the_tier_on_demand) {
  harness h;
  run_with(h, [](harness& h) { return waiting_tasks_move_into_the_tier(h); });
  const auto r = run_compact_command(h.name_space);
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(r.out == "{\"moved\":2}\n");
  BOOST_TEST(corvo::test::shared_schedule_server().cli("HLEN", h.tasks_key()) == "3");
}

BOOST_AUTO_TEST_CASE(a_negative_compact_after_is_refused) {
  asio::io_context ctx;
  const auto url = corvo::test::shared_schedule_server().url();
  redis::client conn(ctx.get_executor(), redis::client_config::from_url(url));
  BOOST_CHECK_EXCEPTION(sched::redis_store(conn, redis::client_config::from_url(url),
                                           {.compact_after = std::chrono::milliseconds(-1)}),
                        std::invalid_argument, [](const std::invalid_argument& e) {
                          return std::string(e.what()).find("compact_after") != std::string::npos;
                        });
}

// A handler recording each run's task id and start time.
struct run_log {
  std::vector<std::pair<std::string, sched::time_point>> runs;
};
struct recording_handler {
  run_log* log;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    log->runs.emplace_back(t.work.id, sched::now());
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

// With the dispatcher asleep (max_sleep 10 min, nothing due), a task another process
// schedules into the compact tier wakes it for the move (the wake-up channel), and it runs at
// its due time, once.
asio::awaitable<void> woken_for_the_move(sched::scheduler& s, sched::store& other, run_log& log,
                                         redis::client& conn, const std::string& tasks_key) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const bool started =
      co_await corvo::test::eventually([&] { return s.dispatch_stats().claims > 0; }, 10s);
  BOOST_TEST_REQUIRE(started);
  const auto due = sched::now() + 1500ms;
  co_await other.schedule(email_task("timeout-1", due));
  const auto stored = co_await s.get("timeout-1");
  BOOST_TEST_REQUIRE(stored.has_value());
  // In the compact tier: not in the tasks hash.
  BOOST_TEST(co_await integer(conn, "HEXISTS", tasks_key, "timeout-1") == 0);
  const bool ran = co_await corvo::test::eventually([&] { return !log.runs.empty(); }, 10s);
  BOOST_TEST_REQUIRE(ran);
  BOOST_TEST(log.runs.size() == 1u);
  BOOST_TEST(log.runs[0].first == "timeout-1");
  BOOST_TEST((log.runs[0].second >= due));
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

BOOST_AUTO_TEST_CASE(a_sleeping_dispatcher_is_woken_for_the_move_and_runs_the_task_on_time) {
  const auto name_space = corvo::test::next_schedule_namespace();
  asio::io_context ctx;
  auto options = sched::scheduler_options::from(corvo::config::from_string(
      R"({"redis": {"url": ")" + corvo::test::shared_schedule_server().url() +
      R"("}, "scheduler": {"provider": "redis", "namespace": ")" + name_space +
      R"(", "shards": 1, "max_sleep": "10m", "redis": {"compact_after": "300ms"}}})"));
  const auto url = corvo::test::shared_schedule_server().url();
  redis::client conn(ctx.get_executor(), redis::client_config::from_url(url));
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  sched::scheduler s(ctx.get_executor(), options, &conn, redis::client_config::from_url(url));
  sched::redis_store other(
      conn, redis::client_config::from_url(url),
      {.name_space = name_space, .shards = 1, .compact_after = std::chrono::milliseconds(300)});
  run_log log;
  s.handlers().on_task("email", recording_handler{&log});
  corvo::test::run(ctx, woken_for_the_move(s, other, log, conn, "{" + name_space + ":0}:tasks"),
                   [&] { conn.cancel(); });
}

}  // namespace
