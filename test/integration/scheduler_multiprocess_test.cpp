// Several dispatchers sharing one namespace. Redis: three scheduler_worker processes on one
// redis-server run 20,000 tasks exactly once when nobody dies, and a recurring task once
// per occurrence. Memory: three dispatcher objects sharing one memory_store in this process
// run 20,000 tasks exactly once.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <map>
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

constexpr std::size_t task_count = 20'000;
constexpr unsigned shard_count = 16;

// The parent's view of the namespace the workers serve.
struct redis_parent {
  asio::io_context ctx;
  redis::client conn;
  redis_store store;
  explicit redis_parent(const std::string& url)
      : conn(ctx.get_executor(), redis::client_config::from_url(url)),
        store(conn, redis::client_config::from_url(url),
              {.name_space = "mp", .shards = shard_count}) {
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  }
};

asio::awaitable<void> schedule_and_drain(store& tasks, scheduler_workers& workers) {
  co_await corvo::test::schedule_all(
      tasks, corvo::test::record_tasks("task-", task_count, now() + 100ms, 2000ms));
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 120s,
                                       "20,000 tasks on three processes");
}

void check_stopped_cleanly(scheduler_workers& workers) {
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }
}

// id -> the occurrences (due µs) that started, in order, with how many starts each.
std::map<std::string, std::map<long long, std::size_t>> occurrences_started(
    const scheduler_workers& workers) {
  std::map<std::string, std::map<long long, std::size_t>> out;
  for (const auto& [key, pids] :
       run_journal::read(workers.journals(), /*per_occurrence=*/true).started) {
    const auto at = key.find('@');
    out[key.substr(0, at)][std::stoll(key.substr(at + 1))] += pids.size();
  }
  return out;
}

// Schedules the recurring tasks at `first`, waits until each has started `count`
// occurrences, cancels them.
asio::awaitable<void> run_recurring(store& tasks, scheduler_workers& workers,
                                    std::vector<std::string> ids, time_point first,
                                    std::chrono::milliseconds period, std::size_t count) {
  for (const auto& id : ids) {
    task t;
    t.id = id;
    t.type = "record";
    t.due = first;
    t.repeat = interval{period};
    co_await tasks.schedule(std::move(t));
  }
  const auto limit = std::chrono::steady_clock::now() + period * count * 3;
  for (;;) {
    workers.check_alive();
    const auto seen = occurrences_started(workers);
    const bool all = seen.size() == ids.size() &&
                     std::all_of(seen.begin(), seen.end(),
                                 [&](const auto& entry) { return entry.second.size() >= count; });
    if (all || std::chrono::steady_clock::now() > limit) {
      break;
    }
    co_await corvo::sleep_for(50ms);
  }
  for (const auto& id : ids) {
    const bool cancelled = co_await tasks.cancel(id);
    BOOST_TEST(cancelled, id << " was not scheduled any more");
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_provider)

BOOST_AUTO_TEST_CASE(three_processes_run_every_task_exactly_once) {
  corvo::test::redis_server server;
  auto config = scheduler_worker_config::standalone(server.url());
  config.shards = shard_count;
  config.lease = 10s;  // nobody dies here: no lease may expire under a loaded machine
  config.handler_delay = 1ms;
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  redis_parent parent(server.url());

  const auto started = std::chrono::steady_clock::now();
  corvo::test::run(parent.ctx, schedule_and_drain(parent.store, workers),
                   [&] { parent.conn.cancel(); });
  BOOST_TEST_MESSAGE("20,000 tasks drained in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count()
                     << " ms");
  check_stopped_cleanly(workers);

  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == task_count);
  BOOST_TEST(runs.finished.size() == task_count);
  BOOST_TEST(corvo::test::not_exactly_once(runs.started) == "");
  BOOST_TEST(corvo::test::not_exactly_once(runs.finished) == "");
  // Every process took part; every run was acknowledged, none refused as stale.
  BOOST_TEST(runs.starts_by_pid.size() == 3u);
  std::uint64_t succeeded = 0, stale = 0, failed = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    BOOST_TEST(runs.starts_by_pid.contains(workers[i].pid()));
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    succeeded += stats->succeeded;
    stale += stats->stale;
    failed += stats->retried + stats->dead_lettered;
    BOOST_TEST_MESSAGE(workers[i].name() << " ran " << runs.starts_by_pid.at(workers[i].pid()));
  }
  BOOST_TEST(succeeded == task_count);
  BOOST_TEST(stale == 0u);
  BOOST_TEST(failed == 0u);
}

BOOST_AUTO_TEST_CASE(recurring_task_runs_once_per_occurrence_across_processes) {
  corvo::test::redis_server server;
  auto config = scheduler_worker_config::standalone(server.url());
  config.shards = shard_count;
  config.lease = 10s;
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  redis_parent parent(server.url());

  const std::vector<std::string> ids{"beat-a", "beat-b", "beat-c"};
  const auto period = 100ms;
  const std::size_t count = 30;
  const auto first = now() + 300ms;
  corvo::test::run(parent.ctx, run_recurring(parent.store, workers, ids, first, period, count),
                   [&] { parent.conn.cancel(); });
  check_stopped_cleanly(workers);

  // Occurrences are told apart by the time they were scheduled for: from the first, every
  // one on the period's grid started exactly once, none skipped, none doubled.
  const auto seen = occurrences_started(workers);
  BOOST_TEST(seen.size() == ids.size());
  for (const auto& [id, starts] : seen) {
    BOOST_TEST_MESSAGE(id << ": " << starts.size() << " occurrences");
    BOOST_TEST(starts.size() >= count, id << ": only " << starts.size() << " occurrences");
    BOOST_TEST(starts.size() <= count + 2, id << ": " << starts.size() << " occurrences");
    long long expected = first.time_since_epoch().count();
    std::size_t off_grid = 0, doubled = 0;
    for (const auto& [at, times] : starts) {
      off_grid += at != expected ? 1 : 0;
      doubled += times != 1 ? 1 : 0;
      expected = at + std::chrono::microseconds(period).count();
    }
    BOOST_TEST(off_grid == 0u, id << ": occurrences skipped or off the grid");
    BOOST_TEST(doubled == 0u, id << ": occurrences started more than once");
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---- memory provider: three dispatchers, one store, one process --------------------------

namespace {

struct memory_journal {
  std::map<std::string, int> runs;
  std::map<std::size_t, std::size_t> runs_by_dispatcher;
};

asio::awaitable<void> memory_record(memory_journal& j, std::size_t dispatcher_index,
                                    const claimed_task& t) {
  ++j.runs[t.work.id];
  ++j.runs_by_dispatcher[dispatcher_index];
  // Yield once, so runs of the three dispatchers interleave as they would across processes.
  auto ex = co_await asio::this_coro::executor;
  co_await asio::post(ex, asio::use_awaitable);
}

struct memory_recorder {
  memory_journal* j;
  std::size_t index;
  asio::awaitable<void> operator()(const claimed_task& t) const {
    return memory_record(*j, index, t);
  }
};

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

asio::awaitable<void> memory_scenario(memory_store& tasks,
                                      std::vector<std::unique_ptr<dispatcher>>& all,
                                      memory_journal& j) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  for (auto& d : all) {
    co_await group.spawn(run_dispatcher(*d));
  }
  std::exception_ptr failed;
  try {
    co_await corvo::test::schedule_all(
        tasks, corvo::test::record_tasks("task-", task_count, now() + 50ms, 1000ms));
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      const auto stats = co_await tasks.stats();
      if (corvo::test::drained(stats)) {
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(
            "memory store not drained after 60 s: " + corvo::test::to_string(stats) + ", " +
            std::to_string(j.runs.size()) + " tasks ran");
      }
      co_await corvo::sleep_for(50ms);
    }
  } catch (...) {
    failed = std::current_exception();
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
  if (failed) {
    std::rethrow_exception(failed);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_provider)

BOOST_AUTO_TEST_CASE(three_dispatchers_share_one_store_exactly_once) {
  asio::io_context ctx;
  memory_store tasks(ctx.get_executor(), shard_count);
  memory_journal j;
  std::vector<std::unique_ptr<handler_registry>> handlers;
  std::vector<std::unique_ptr<direct_sink>> sinks;
  std::vector<std::unique_ptr<dispatcher>> dispatchers;
  dispatcher_options options;
  options.max_in_flight = 32;
  options.claim_batch = 64;
  options.lease = 10s;
  options.max_sleep = 200ms;
  for (std::size_t i = 0; i < 3; ++i) {
    handlers.push_back(std::make_unique<handler_registry>());
    handlers.back()->on_task("record", memory_recorder{&j, i});
    sinks.push_back(std::make_unique<direct_sink>(*handlers.back()));
    dispatchers.push_back(std::make_unique<dispatcher>(tasks, *sinks.back(), options));
  }
  corvo::test::run(ctx, memory_scenario(tasks, dispatchers, j));

  BOOST_TEST(j.runs.size() == task_count);
  const auto duplicates = std::count_if(j.runs.begin(), j.runs.end(),
                                        [](const auto& entry) { return entry.second != 1; });
  BOOST_TEST(duplicates == 0);
  std::uint64_t succeeded = 0, stale = 0;
  for (std::size_t i = 0; i < dispatchers.size(); ++i) {
    BOOST_TEST(j.runs_by_dispatcher[i] > 0u, "dispatcher " << i << " ran nothing");
    succeeded += dispatchers[i]->stats().succeeded;
    stale += dispatchers[i]->stats().stale;
    BOOST_TEST_MESSAGE("dispatcher " << i << " ran " << j.runs_by_dispatcher[i]);
  }
  BOOST_TEST(succeeded == task_count);
  BOOST_TEST(stale == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
