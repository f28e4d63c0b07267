// Global rate and concurrency limits per task type on a Redis Cluster (3 masters, 3
// replicas; docs/scheduler.md "Limits", "On a Redis Cluster"). A type's permits live in its
// own slot and the tasks in their shards' slots, on other masters: the claim takes the
// permits in steps (src/schedule/redis_store_limits.cpp). The scenarios of
// scheduler_limits_test run here unchanged (support/limit_scenarios.hpp): three processes
// share the limits exactly, and the permit timing of the store's calls is the standalone's.
// A worker killed while holding a permit gives it back at its lease deadline, not before.
// The cases share one cluster (creating one takes seconds); each uses its own namespace.
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <map>
#include <set>

#include "support/limit_scenarios.hpp"
#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::scheduler_worker_config;
using corvo::test::scheduler_workers;
namespace limits = corvo::test::limits;

namespace {

corvo::test::redis_cluster& shared_cluster() {
  static corvo::test::redis_cluster cluster;
  return cluster;
}

// The master that owns `key`.
std::size_t owner_of(corvo::test::redis_cluster& cluster, const std::string& key) {
  return cluster.node_for_slot(cluster.key_slot(key));
}

// A command on the master of its key (args[1]), as redis-cli prints the reply.
std::function<std::string(std::vector<std::string>)> on_cluster(
    corvo::test::redis_cluster& cluster) {
  return [&cluster](std::vector<std::string> args) {
    return cluster.node(owner_of(cluster, args.at(1))).cli_argv(args);
  };
}

struct cluster_parent {
  asio::io_context ctx;
  redis::client_config config;
  redis::client conn;
  redis_store store;
  cluster_parent(corvo::test::redis_cluster& cluster, std::string name_space, unsigned shards)
      : config(redis::client_config::from_cluster_seeds(cluster.seed_urls())),
        conn(ctx.get_executor(), config),
        store(conn, config, {.name_space = std::move(name_space), .shards = shards}) {
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  }
  ~cluster_parent() { conn.cancel(); }
};

// A namespace `<base><n>` whose shard 0 and the `mail` limit are on different masters.
std::string split_namespace(corvo::test::redis_cluster& cluster, const std::string& base) {
  for (int n = 0;; ++n) {
    const auto ns = base + std::to_string(n);
    if (owner_of(cluster, "{" + ns + ":0}:due") != owner_of(cluster, "{" + ns + ":limit:mail}:")) {
      return ns;
    }
  }
}

asio::awaitable<void> watch_into(redis_store& s, std::vector<unsigned>& woken) {
  std::function<void(unsigned)> record = [&woken](unsigned shard) { woken.push_back(shard); };
  co_await s.watch_wakes(std::move(record));
}

}  // namespace

BOOST_AUTO_TEST_CASE(three_processes_share_the_limits_of_a_type) {
  auto& cluster = shared_cluster();
  constexpr unsigned shards = 16;
  std::set<std::size_t> owners;
  for (unsigned s = 0; s < shards; ++s) {
    owners.insert(owner_of(cluster, "{clim:" + std::to_string(s) + "}:due"));
  }
  BOOST_TEST(owners.size() == 3u);  // the limit's master is another than most shards'

  // The run counters share a hash tag: the worker's counting script takes both keys.
  const auto config = limits::shared_limits_config(
      scheduler_worker_config::cluster(cluster.seed_urls()), "clim", shards, "{crun}");
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  cluster_parent parent(cluster, "clim", shards);
  limits::drain_and_stop(parent, workers);
  limits::check_shared_limits(workers, on_cluster(cluster), "{crun}", "clim");
}

namespace {

limits::harness cluster_harness(cluster_parent& parent) {
  return {
      &parent.store,
      [](std::chrono::milliseconds d) -> asio::awaitable<void> { co_await corvo::sleep_for(d); },
      true};
}

}  // namespace

BOOST_AUTO_TEST_CASE(permits_free_at_the_computed_times) {
  auto& cluster = shared_cluster();
  cluster_parent parent(cluster, split_namespace(cluster, "cperm"), 1);
  corvo::test::run(parent.ctx, limits::permits_free_at_the_computed_times(cluster_harness(parent)),
                   [&] { parent.conn.cancel(); });
}

BOOST_AUTO_TEST_CASE(a_permit_lasts_as_long_as_its_lease) {
  auto& cluster = shared_cluster();
  cluster_parent parent(cluster, split_namespace(cluster, "clease"), 1);
  corvo::test::run(parent.ctx, limits::a_permit_lasts_as_long_as_its_lease(cluster_harness(parent)),
                   [&] { parent.conn.cancel(); });
}

namespace {

asio::awaitable<void> claim_k1(store& tasks, scheduler_workers& workers) {
  co_await tasks.schedule(limits::mail("k1", now()));
  co_await corvo::test::wait_for_store(
      tasks, workers, [](const store_stats& s) { return s.in_flight == 1; }, 20s,
      "the first worker's claim of k1");
}

asio::awaitable<void> schedule_k2(store& tasks) {
  co_await tasks.schedule(limits::mail("k2", now()));
}

asio::awaitable<void> wait_until_drained(store& tasks, scheduler_workers& workers) {
  // The workers' safety-net sleep is 30 s: only the computed permit time can drain it in time.
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 15s,
                                       "k1 and k2 on the second worker");
}

}  // namespace

// `mail` 1 at once, leases of 2 s. A worker claims k1 (its run never ends) and is killed:
// its permit is taken until the lease deadline. A second worker then finds k2 due: it starts
// it only once the permit has come back (its claim time at least the lease after k1's), at
// the permit time the claim reported (its safety-net sleep is 30 s), and runs k1 again on
// attempt 2 once its lease has expired, never two at once.
BOOST_AUTO_TEST_CASE(a_killed_worker_frees_its_permits_at_its_lease_deadline) {
  auto& cluster = shared_cluster();
  auto config = scheduler_worker_config::cluster(cluster.seed_urls());
  config.name_space = "ckill";
  config.shards = 4;
  config.lease = 2s;
  config.max_sleep = 30s;
  config.types = {"mail"};
  config.limits = {"mail::1"};
  config.count_running = "{ckrun}";
  auto holding = config;
  holding.holdable = true;
  std::vector<limits::start_line> first_starts;
  {
    scheduler_workers first(CORVO_SCHEDULER_WORKER_PATH, 1, holding);
    first[0].hold_new_runs();
    cluster_parent parent(cluster, "ckill", 4);
    corvo::test::run(parent.ctx, claim_k1(parent.store, first), [&] { parent.conn.cancel(); });
    first[0].kill();
    first_starts = limits::read_starts(first.journals());
  }
  BOOST_TEST_REQUIRE(first_starts.size() == 1u);
  const auto k1_claimed = first_starts[0].claimed_us;

  cluster_parent parent(cluster, "ckill", 4);
  corvo::test::run(parent.ctx, schedule_k2(parent.store), [&] { parent.conn.cancel(); });
  scheduler_workers second(CORVO_SCHEDULER_WORKER_PATH, 1, config);
  const auto started = std::chrono::steady_clock::now();
  cluster_parent watcher(cluster, "ckill", 4);
  corvo::test::run(watcher.ctx, wait_until_drained(watcher.store, second),
                   [&] { watcher.conn.cancel(); });
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST_MESSAGE("drained in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                     << " ms");
  for (const auto& problem : second.stop_all()) {
    BOOST_ERROR(problem);
  }

  std::map<std::string, limits::start_line> by_id;
  for (auto& s : limits::read_starts(second.journals())) {
    BOOST_TEST(by_id.emplace(s.id, s).second, s.id << " started twice");
  }
  BOOST_TEST_REQUIRE(by_id.size() == 2u);
  const auto lease_us = std::chrono::microseconds(config.lease).count();
  BOOST_TEST(by_id.at("k2").attempts == 1u);
  BOOST_TEST(by_id.at("k1").attempts == 2u);
  BOOST_TEST(by_id.at("k2").claimed_us >= k1_claimed + lease_us);
  BOOST_TEST(by_id.at("k1").claimed_us >= k1_claimed + lease_us);
  const auto redis = on_cluster(cluster);
  BOOST_TEST(redis({"GET", "{ckrun}:mail:max"}) == "1");
  BOOST_TEST(redis({"ZCARD", "{ckill:limit:mail}:running"}) == "0");
  const auto stats = second[0].stats();
  BOOST_REQUIRE(stats.has_value());
  BOOST_TEST(stats->succeeded == 2u);
  BOOST_TEST(stats->stale == 0u);
}

namespace {

// `mail` 1 at once on a 4-shard namespace: a1 runs, a2 (in another shard) is held and its
// shard registered as waiting; a2's shard is woken (watch_wakes) when a1's ack releases the
// permit, and not before; the woken claim starts a2.
asio::awaitable<void> a_release_wakes_the_waiting_shard(redis_store& s, std::string a1,
                                                        std::string a2) {
  auto ex = co_await asio::this_coro::executor;
  type_limits given;
  given["mail"].concurrency = 1;
  s.set_limits(given);
  std::vector<unsigned> woken;
  corvo::task_group watch(ex);
  co_await watch.spawn(watch_into(s, woken));
  co_await corvo::sleep_for(500ms);  // the subscription is in place (no wake-up is missed)
  const auto past = now() - 1s;
  co_await s.schedule(limits::mail(a1, past));
  co_await s.schedule(limits::mail(a2, past + 1ms));
  const auto first = co_await s.claim(s.shard_of(a1), 10, 30s);
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  const auto refused = co_await s.claim(s.shard_of(a2), 10, 30s);
  BOOST_TEST(refused.tasks.empty());
  BOOST_TEST(refused.permit_at.has_value());
  co_await corvo::sleep_for(300ms);
  woken.clear();  // the schedules' own wake-ups
  BOOST_TEST(co_await s.ack(s.shard_of(a1), limits::done(first.tasks[0])) == 1u);
  for (int i = 0; i < 100 && woken.empty(); ++i) {
    co_await corvo::sleep_for(20ms);
  }
  BOOST_TEST(woken == std::vector<unsigned>{s.shard_of(a2)});
  const auto second = co_await s.claim(s.shard_of(a2), 10, 30s);
  BOOST_TEST(limits::ids(second) == limits::strings{a2});
  BOOST_TEST(!second.permit_at.has_value());
  watch.cancel();
  try {
    co_await watch.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_released_permit_wakes_the_shard_that_waits_for_it) {
  auto& cluster = shared_cluster();
  cluster_parent parent(cluster, "cwake", 4);
  std::string a1 = "a1", a2;
  for (int i = 0; a2.empty(); ++i) {
    const auto id = "a2-" + std::to_string(i);
    if (parent.store.shard_of(id) != parent.store.shard_of(a1)) {
      a2 = id;
    }
  }
  corvo::test::run(parent.ctx, a_release_wakes_the_waiting_shard(parent.store, a1, a2),
                   [&] { parent.conn.cancel(); });
}

namespace {

// A limited type whose name has a space and an '@': 1 at once; the second task starts once
// the first one's ack has released its permit (the token names the type).
asio::awaitable<void> a_named_type_gets_its_permit_back(redis_store& s) {
  const std::string type = "mail @eu 1";
  type_limits given;
  given[type].concurrency = 1;
  s.set_limits(given);
  for (const auto* id : {"n1", "n2"}) {
    auto t = limits::mail(id, now() - 1s);
    t.type = type;
    co_await s.schedule(std::move(t));
  }
  const auto first = co_await s.claim(0, 10, 30s);
  BOOST_TEST(limits::ids(first) == limits::strings{"n1"});
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  BOOST_TEST(first.tasks[0].work.type == type);
  BOOST_TEST((co_await s.claim(0, 10, 30s)).tasks.empty());
  BOOST_TEST(co_await s.ack(0, limits::done(first.tasks[0])) == 1u);
  const auto second = co_await s.claim(0, 10, 30s);
  BOOST_TEST(limits::ids(second) == limits::strings{"n2"});
  const auto states = co_await s.limit_states();
  BOOST_TEST_REQUIRE(states.size() == 1u);
  BOOST_TEST(states[0].running == 1u);
  BOOST_TEST(states[0].held == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_type_of_any_name_gets_its_permits_back) {
  auto& cluster = shared_cluster();
  cluster_parent parent(cluster, "cname", 1);
  corvo::test::run(parent.ctx, a_named_type_gets_its_permit_back(parent.store),
                   [&] { parent.conn.cancel(); });
}
