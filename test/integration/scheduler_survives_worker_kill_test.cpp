// kill -9 of one of three dispatcher processes in the middle of 20,000 tasks: every task is
// still handled, none is lost; the only tasks that run twice are ones the killed process
// had started (its leases expire and the survivors take them over), and none runs more than
// twice.
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <optional>
#include <stdexcept>

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

std::string first_of(const std::vector<std::string>& examples) {
  return examples.empty() ? std::string() : examples.front();
}

// Ids the worker with this journal started and did not finish.
std::vector<std::string> unfinished_in(const std::filesystem::path& journal) {
  const auto runs = run_journal::read({journal});
  std::vector<std::string> out;
  for (const auto& [id, pids] : runs.started) {
    const auto done = runs.finished.find(id);
    if (done == runs.finished.end() || done->second.size() < pids.size()) {
      out.push_back(id);
    }
  }
  return out;
}

struct kill_outcome {
  std::size_t finished_before = 0;
  /// What the victim's journal says it had started and not finished when it died.
  std::vector<std::string> cut_short;
};

// The tasks are all due before the workers start, so the kill comes with a backlog left.
asio::awaitable<kill_outcome> kill_mid_run(store& tasks, std::optional<scheduler_workers>& fleet,
                                           scheduler_worker_config config) {
  co_await corvo::test::schedule_all(tasks, corvo::test::record_tasks("task-", task_count, now()));
  auto& workers = fleet.emplace(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  // Mid-run: a quarter of the tasks are done, the victim holds leases on a full window.
  co_await corvo::test::wait_for_store(
      tasks, workers,
      [](const store_stats& s) { return s.scheduled + s.in_flight <= task_count * 3 / 4; }, 120s,
      "a quarter of the tasks");
  // Kill with runs in progress, certainly: from now on the victim's new runs never finish
  // (each says so in its journal), so once one is held the kill cuts it short.
  auto& victim = workers[0];
  victim.hold_new_runs();
  const auto held_by_victim = [&] {
    return run_journal::read({victim.journal_path()}).held_by_pid.contains(victim.pid());
  };
  asio::steady_timer pause(co_await asio::this_coro::executor);
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!held_by_victim()) {
    workers.check_alive();
    if (std::chrono::steady_clock::now() > give_up) {
      throw std::runtime_error("the victim held no run within 60 s:\n" + victim.log_tail());
    }
    pause.expires_after(1ms);
    co_await pause.async_wait(asio::use_awaitable);
  }
  workers[0].kill();
  kill_outcome out;
  out.finished_before = run_journal::read(workers.journals()).finished.size();
  out.cut_short = unfinished_in(workers[0].journal_path());  // complete: the victim is dead
  BOOST_TEST_MESSAGE("killed " << workers[0].name() << " (pid " << workers[0].pid() << ") after "
                               << out.finished_before << " tasks had finished, with "
                               << out.cut_short.size() << " run(s) in progress");
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 120s,
                                       "the rest after the kill");
  co_return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_task_runs_and_only_the_killed_workers_tasks_run_twice) {
  corvo::test::redis_server server;
  auto config = scheduler_worker_config::standalone(server.url());
  config.shards = shard_count;
  // How long the killed worker's tasks wait before the survivors take them over; long enough
  // that a survivor's finished run is acknowledged before its lease runs out on a busy box.
  config.lease = 3s;
  config.handler_delay = 2ms;
  config.holdable = true;
  std::optional<scheduler_workers> fleet;

  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  redis_store tasks(conn, url, {.name_space = "mp", .shards = shard_count});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto killed =
      corvo::test::run(ctx, kill_mid_run(tasks, fleet, config), [&] { conn.cancel(); });
  const auto finished_before = killed.finished_before;
  auto& workers = *fleet;
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }

  const pid_t victim = workers[0].pid();
  const auto runs = run_journal::read(workers.journals());
  // None lost: every task finished somewhere.
  BOOST_TEST(runs.finished.size() == task_count);
  BOOST_TEST(runs.started.size() == task_count);
  // Mid-run: the survivors had far more left to do than the runs in flight at the kill.
  BOOST_TEST(runs.finished.size() > finished_before + workers.size() * config.max_in_flight);
  std::size_t twice = 0, recovered = 0;
  std::vector<std::string> twice_without_victim, more_than_twice;
  for (const auto& [id, pids] : runs.started) {
    const bool victim_started = std::find(pids.begin(), pids.end(), victim) != pids.end();
    if (victim_started &&
        std::any_of(pids.begin(), pids.end(), [&](pid_t p) { return p != victim; })) {
      ++recovered;
    }
    if (pids.size() > 1) {
      ++twice;
      if (!victim_started) {
        twice_without_victim.push_back(id);
      }
      if (pids.size() > 2) {
        more_than_twice.push_back(id + " x" + std::to_string(pids.size()));
      }
    }
  }
  for (const auto& [id, pids] : runs.finished) {
    if (pids.size() > 2) {
      more_than_twice.push_back(id + " finished x" + std::to_string(pids.size()));
    }
  }
  BOOST_TEST(twice_without_victim.empty(),
             twice_without_victim.size() << " task(s) ran twice without the killed worker, e.g. "
                                         << first_of(twice_without_victim));
  BOOST_TEST(more_than_twice.empty(), more_than_twice.size()
                                          << " task(s) ran more than twice, e.g. "
                                          << first_of(more_than_twice));
  // The kill cut runs short, and a survivor ran every one of them again.
  BOOST_TEST(!killed.cut_short.empty());
  for (const auto& id : killed.cut_short) {
    const auto& pids = runs.started.at(id);
    BOOST_TEST(std::any_of(pids.begin(), pids.end(), [&](pid_t p) { return p != victim; }),
               id << " was cut short by the kill and never ran on a survivor");
  }
  BOOST_TEST(recovered >= killed.cut_short.size());
  BOOST_REQUIRE(runs.starts_by_pid.contains(victim));
  BOOST_TEST_MESSAGE("victim started " << runs.starts_by_pid.at(victim) << " tasks; " << recovered
                                       << " of them ran again on a survivor; " << twice
                                       << " ran more than once in all");
  for (std::size_t i = 1; i < workers.size(); ++i) {
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    BOOST_TEST(stats->dead_lettered == 0u);
    BOOST_TEST(stats->retried == 0u);
  }
}
