// A task whose handler kills its worker (std::abort) is dead-lettered after max_attempts
// lease expiries, with the reason, instead of taking down a worker every lease period
// forever. The test restarts the worker each time it dies. Every other task runs; the only
// ones that run more than once are ones an aborted worker had started (its in-flight runs
// die with it, and finished runs whose batched ack had not been sent run again).
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <memory>
#include <optional>
#include <set>

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

constexpr std::size_t task_count = 300;
constexpr std::uint32_t poison_attempts = 3;

struct poison_outcome {
  std::optional<task> poison;
  bool settled = false;
  std::size_t restarts = 0;
  store_stats last{};
};

// Runs workers one at a time, starting a new one whenever the current one has died, until
// the poison task is dead and everything else is done (or 60 s pass).
asio::awaitable<poison_outcome> run_until_settled(
    store& tasks, std::vector<std::unique_ptr<scheduler_workers>>& fleets,
    scheduler_worker_config config) {
  auto poison = corvo::test::record_tasks("poison", 1, now() + 200ms).front();
  poison.id = "poison";
  poison.max_attempts = poison_attempts;
  co_await tasks.schedule(poison);
  co_await corvo::test::schedule_all(tasks,
                                     corvo::test::record_tasks("task-", task_count, now(), 1000ms));
  poison_outcome out;
  const auto limit = std::chrono::steady_clock::now() + 60s;
  fleets.push_back(std::make_unique<scheduler_workers>(CORVO_SCHEDULER_WORKER_PATH, 1, config));
  while (std::chrono::steady_clock::now() < limit) {
    if (!(*fleets.back())[0].running()) {
      ++out.restarts;
      fleets.push_back(std::make_unique<scheduler_workers>(CORVO_SCHEDULER_WORKER_PATH, 1, config));
    }
    out.last = co_await tasks.stats();
    out.poison = co_await tasks.get("poison");
    if (out.poison && out.poison->state == task_state::dead && out.last.scheduled == 0 &&
        out.last.in_flight == 0) {
      out.settled = true;
      break;
    }
    co_await corvo::sleep_for(20ms);
  }
  co_return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_task_that_kills_its_worker_is_dead_after_max_attempts_lease_expiries) {
  corvo::test::redis_server server;
  auto config = scheduler_worker_config::standalone(server.url());
  config.shards = 4;
  config.lease = 1000ms;
  config.max_sleep = 100ms;
  config.max_in_flight = 8;
  config.handler_delay = 20ms;
  config.abort_task = "poison";
  std::vector<std::unique_ptr<scheduler_workers>> fleets;

  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  redis_store tasks(conn, url, {.name_space = "mp", .shards = 4});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto out =
      corvo::test::run(ctx, run_until_settled(tasks, fleets, config), [&] { conn.cancel(); });

  std::set<pid_t> aborted;
  std::vector<std::filesystem::path> journals;
  for (auto& fleet : fleets) {
    if (!(*fleet)[0].running())
      aborted.insert((*fleet)[0].pid());
    for (auto& j : fleet->journals())
      journals.push_back(j);
  }
  for (const auto& problem : fleets.back()->stop_all()) {
    BOOST_ERROR(problem);
  }
  BOOST_TEST(out.settled,
             "not settled within 60 s: " << corvo::test::to_string(out.last) << ", poison "
                                         << (out.poison ? to_string(out.poison->state) : "gone")
                                         << " after " << (out.poison ? out.poison->attempts : 0)
                                         << " attempts, " << out.restarts << " restarts");
  BOOST_REQUIRE(out.poison);
  BOOST_TEST((out.poison->state == task_state::dead));
  BOOST_TEST(out.poison->attempts == poison_attempts);
  BOOST_TEST(out.poison->last_error == "lease expired 3 times (worker died or hung)");

  const auto runs = run_journal::read(journals);
  // The poison ran once in each of three workers, each of which it killed.
  BOOST_TEST(runs.started.at("poison").size() == poison_attempts);
  BOOST_TEST(!runs.finished.contains("poison"));
  BOOST_TEST(aborted.size() == poison_attempts);
  BOOST_TEST(out.restarts == poison_attempts);
  for (const pid_t p : runs.started.at("poison")) {
    BOOST_TEST(aborted.contains(p));
  }
  // Every other task finished; a task ran more than once only in workers the poison killed:
  // each start but one was by an aborted worker.
  std::size_t repeated = 0;
  for (std::size_t i = 0; i < task_count; ++i) {
    const auto id = "task-" + std::to_string(i);
    BOOST_TEST(runs.finished.contains(id), id << " never finished");
    if (!runs.started.contains(id))
      continue;
    const auto& pids = runs.started.at(id);
    const auto by_survivors =
        std::count_if(pids.begin(), pids.end(), [&](pid_t p) { return !aborted.contains(p); });
    const auto by_aborted = static_cast<std::ptrdiff_t>(pids.size()) - by_survivors;
    BOOST_TEST(by_survivors <= 1, id << " ran " << by_survivors << " times in surviving workers");
    const std::set<pid_t> distinct(pids.begin(), pids.end());
    BOOST_TEST(distinct.size() == pids.size(), id << " ran twice in one worker");
    if (pids.size() > 1)
      ++repeated;
    (void)by_aborted;
  }
  BOOST_TEST_MESSAGE(repeated << " task(s) ran again after a worker died mid-run");
}
