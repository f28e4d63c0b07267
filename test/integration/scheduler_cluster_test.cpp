// Three dispatcher processes on a Redis Cluster (3 masters, 3 replicas): the shards of the
// namespace spread over the masters' slots, every store call touches one slot, and 20,000
// tasks run exactly once when nobody dies.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <set>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::run_journal;
using corvo::test::scheduler_worker_config;
using corvo::test::scheduler_workers;

namespace {

constexpr std::size_t task_count = 20'000;
constexpr unsigned shard_count = 16;

asio::awaitable<void> schedule_and_drain(store& tasks, scheduler_workers& workers) {
  co_await corvo::test::schedule_all(
      tasks, corvo::test::record_tasks("task-", task_count, now() + 100ms, 2000ms));
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 120s,
                                       "20,000 tasks on three processes and a cluster");
}

// `corvo <words> --cluster <seed> --namespace mp --shards 16 --json` (the program is built
// next to the tests: <build>/tools/corvo).
boost::json::value corvo_on_cluster(const corvo::test::redis_cluster& cluster,
                                    std::vector<std::string> words) {
  std::vector<std::string> argv{corvo::test::corvo_program().string()};
  argv.insert(argv.end(), words.begin(), words.end());
  argv.insert(argv.end(), {"--cluster", cluster.seed_urls().front(), "--namespace", "mp",
                           "--shards", std::to_string(shard_count), "--json"});
  const auto r = corvo::test::run_command(argv, std::chrono::seconds(30));
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, "corvo failed: " << r.err);
  return boost::json::parse(r.out);
}

}  // namespace

BOOST_AUTO_TEST_CASE(three_processes_on_a_cluster_run_every_task_exactly_once) {
  corvo::test::redis_cluster cluster;
  // The shards are spread over every master (so the test exercises routing, not one node).
  std::set<std::size_t> owners;
  for (unsigned s = 0; s < shard_count; ++s) {
    const auto tag = "{mp:" + std::to_string(s) + "}:due";
    owners.insert(cluster.node_for_slot(cluster.key_slot(tag)));
  }
  BOOST_TEST(owners.size() == 3u);

  auto config = scheduler_worker_config::cluster(cluster.seed_urls());
  config.shards = shard_count;
  config.lease = 10s;
  config.handler_delay = 1ms;
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);

  asio::io_context ctx;
  const auto seeds = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  redis::client conn(ctx.get_executor(), seeds);
  redis_store tasks(conn, seeds, {.name_space = "mp", .shards = shard_count});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto started = std::chrono::steady_clock::now();
  corvo::test::run(ctx, schedule_and_drain(tasks, workers), [&] { conn.cancel(); });
  BOOST_TEST_MESSAGE("20,000 tasks drained in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count()
                     << " ms");
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }

  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == task_count);
  BOOST_TEST(runs.finished.size() == task_count);
  BOOST_TEST(corvo::test::not_exactly_once(runs.started) == "");
  BOOST_TEST(corvo::test::not_exactly_once(runs.finished) == "");
  BOOST_TEST(runs.starts_by_pid.size() == 3u);
  std::uint64_t succeeded = 0, stale = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    succeeded += stats->succeeded;
    stale += stats->stale;
    BOOST_TEST(stats->dead_lettered + stats->retried == 0u);
  }
  BOOST_TEST(succeeded == task_count);
  BOOST_TEST(stale == 0u);

  // The administration commands work on the cluster too (every shard on its own master).
  const auto added = corvo_on_cluster(cluster, {"schedule", "add", "--id", "later", "--type",
                                                "record", "--payload", "{}", "--in", "1h"});
  BOOST_TEST(added.as_object().at("scheduled").as_string() == "later");
  const auto stats = corvo_on_cluster(cluster, {"stats"}).as_object();
  BOOST_TEST(stats.at("scheduled").to_number<long long>() == 1);
  BOOST_TEST(stats.at("in_flight").to_number<long long>() == 0);
  BOOST_TEST(stats.at("dead").to_number<long long>() == 0);
}
