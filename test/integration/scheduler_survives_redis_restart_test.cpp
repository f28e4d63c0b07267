// redis-server (AOF, fsync always) killed with SIGKILL and restarted in the middle of a run
// of three dispatcher processes: the dispatchers reconnect and finish, nothing is lost.
// Duplicates are allowed (at-least-once: a reply lost with the connection), at most one
// extra run per task.
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <optional>

#include "support/redis_server.hpp"
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

// Returns how many tasks had finished when the server was killed.
// The tasks are all due before the workers start, so the crash comes with a backlog left.
asio::awaitable<std::size_t> restart_mid_run(corvo::test::redis_server& server, store& tasks,
                                             std::optional<scheduler_workers>& fleet,
                                             scheduler_worker_config config) {
  co_await corvo::test::schedule_all(tasks, corvo::test::record_tasks("task-", task_count, now()));
  auto& workers = fleet.emplace(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  co_await corvo::test::wait_for_store(
      tasks, workers,
      [](const store_stats& s) { return s.scheduled + s.in_flight <= task_count * 3 / 4; }, 120s,
      "a quarter of the tasks");
  const auto old_pid = server.pid();
  server.kill();
  // Runs finished before the crash (and those in flight, which end during the outage).
  const auto finished_before = run_journal::read(workers.journals()).finished.size();
  co_await corvo::sleep_for(1s);  // the dispatchers see the outage and retry
  server.restart();
  BOOST_TEST(server.pid() != old_pid);
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 120s,
                                       "the rest after the restart");
  co_return finished_before;
}

}  // namespace

BOOST_AUTO_TEST_CASE(dispatchers_reconnect_after_a_redis_restart_and_lose_nothing) {
  corvo::test::redis_server server(
      {.append_only = true, .extra_config = {"appendfsync always"}, .tag = "redis-aof"});
  auto config = scheduler_worker_config::standalone(server.url());
  config.shards = shard_count;
  config.lease = 4s;  // longer than the outage: runs in flight keep their leases
  config.handler_delay = 2ms;
  std::optional<scheduler_workers> fleet;

  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  redis_store tasks(conn, url, {.name_space = "mp", .shards = shard_count});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto finished_before =
      corvo::test::run(ctx, restart_mid_run(server, tasks, fleet, config), [&] { conn.cancel(); });
  auto& workers = *fleet;
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }

  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == task_count);
  BOOST_TEST(runs.finished.size() == task_count);  // none lost
  // The pending tasks came back from the AOF and the dispatchers claimed them after the
  // restart: far more finished afterwards than the runs in flight at the crash.
  BOOST_TEST_MESSAGE(finished_before << " tasks had finished before the crash");
  BOOST_TEST(runs.finished.size() > finished_before + workers.size() * config.max_in_flight);
  std::size_t twice = 0, more_than_twice = 0;
  for (const auto& [id, pids] : runs.started) {
    twice += pids.size() == 2 ? 1 : 0;
    more_than_twice += pids.size() > 2 ? 1 : 0;
  }
  BOOST_TEST(more_than_twice == 0u);
  std::uint64_t store_errors = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    BOOST_TEST(stats->dead_lettered == 0u);
    store_errors += stats->store_errors;
  }
  BOOST_TEST_MESSAGE(twice << " task(s) ran twice; the workers counted " << store_errors
                           << " failed store calls");
  BOOST_TEST(store_errors > 0u);  // the outage hit the dispatchers while they worked
}
