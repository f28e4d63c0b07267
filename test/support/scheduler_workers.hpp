#pragma once
// Scheduler dispatcher processes for multi-process tests: each a `scheduler_worker` program
// (test/programs/scheduler_worker.cpp) with its own output log and run journal in a temp
// dir, and the parent-side helpers those tests share: scheduling many tasks at once,
// waiting (bounded) for a store to drain while watching the workers, and reading the
// journals back to count runs per task and per process.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/schedule/store.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace corvo::test {

/// The `stats ...` line a worker prints when it stops gracefully.
struct scheduler_worker_stats {
  std::uint64_t claimed = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t retried = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t stale = 0;
  std::uint64_t store_errors = 0;
  std::uint64_t connects = 0;  ///< standalone client connections (1 + reconnections)
  std::uint64_t claims = 0;    ///< claim calls
};

/// One scheduler_worker process. Killed (SIGKILL) with the object if still running.
class scheduler_worker {
 public:
  /// Starts `program` with `args` plus `--journal <dir>/<name>.journal` (and, with
  /// `holdable`, `--hold-file <dir>/<name>.hold`: scheduler_worker and queue_worker); output goes
  /// to
  /// `<dir>/<name>.log`.
  scheduler_worker(const std::filesystem::path& program, const std::filesystem::path& dir,
                   const std::string& name, std::vector<std::string> args, bool holdable = false);

  const std::string& name() const noexcept { return name_; }
  pid_t pid() const noexcept { return process_.pid(); }
  const std::filesystem::path& journal_path() const noexcept { return journal_; }
  const std::filesystem::path& log_path() const noexcept { return log_; }

  /// Waits until the worker printed its ready line; throws std::runtime_error with the log
  /// when it exits first or the time runs out.
  void wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  bool running() { return process_.running(); }
  /// True once kill() was called: the worker is expected to be gone.
  bool killed() const noexcept { return killed_; }
  /// From now on, every run this worker starts stays in progress until the process ends
  /// (creates its hold file): a test that kills it then knows runs are cut short. Needs a
  /// worker started `holdable`.
  void hold_new_runs();
  /// SIGKILL, and reap.
  void kill();
  /// SIGTERM and wait (SIGKILL after `timeout`); the wait status.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  /// The stats line of a graceful stop, if it printed one.
  std::optional<scheduler_worker_stats> stats() const;
  /// The last lines of its output (sanitizer stack frames left out), for failure messages.
  std::string log_tail(std::size_t lines = 30) const;

 private:
  std::string name_;
  std::filesystem::path journal_;
  std::filesystem::path log_;
  std::filesystem::path hold_;
  child_process process_;
  bool killed_ = false;
};

/// Command-line options of a worker, as the program takes them.
struct scheduler_worker_config {
  /// `--redis URL` or `--cluster URL` per seed.
  std::vector<std::string> connection;
  std::string name_space = "mp";
  unsigned shards = 16;
  std::size_t max_in_flight = 32;
  std::size_t claim_batch = 64;
  std::chrono::milliseconds lease{2000};
  std::chrono::milliseconds max_sleep{500};
  std::chrono::milliseconds handler_delay{0};
  /// A task id whose run calls std::abort() (`--abort-task`); empty: none.
  std::string abort_task;
  /// `--request-timeout`: the Redis client's reply deadline; unset: its default.
  std::optional<std::chrono::milliseconds> request_timeout;
  /// Give each worker a hold file (scheduler_worker::hold_new_runs).
  bool holdable = false;
  /// More task types the recording handler takes (`--type`; "record" always).
  std::vector<std::string> types;
  /// Global limits, `TYPE:RATE:CONCURRENCY` each (`--limit`; an empty part: none).
  std::vector<std::string> limits;
  /// `--count-running KEY`: the handler counts its runs of type T in progress in KEY:T and
  /// keeps the most at once in KEY:T:max (Redis keys).
  std::string count_running;

  static scheduler_worker_config standalone(const std::string& url);
  static scheduler_worker_config cluster(const std::vector<std::string>& seeds);
  std::vector<std::string> arguments() const;
};

/// A few workers with the same configuration, in one temp dir.
class scheduler_workers {
 public:
  /// Starts `count` workers and waits until each is ready.
  scheduler_workers(std::filesystem::path program, std::size_t count,
                    const scheduler_worker_config& config);

  std::size_t size() const noexcept { return workers_.size(); }
  scheduler_worker& operator[](std::size_t i) { return *workers_.at(i); }
  std::vector<std::filesystem::path> journals() const;

  /// Throws std::runtime_error naming the worker (with its log) if one that was not
  /// killed has exited.
  void check_alive();
  /// Stops every running worker gracefully; returns a failure description per worker that
  /// did not exit with status 0 (empty when all did).
  std::vector<std::string> stop_all(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  /// The log tails of every worker, for failure messages.
  std::string describe();

 private:
  temp_dir dir_;
  std::vector<std::unique_ptr<scheduler_worker>> workers_;
};

/// The runs recorded in worker journals.
struct run_journal {
  /// Key: the task id, or `id@occurrence` with `per_occurrence`. Value: the pid of each start
  /// (finish), in journal order per process.
  std::map<std::string, std::vector<pid_t>> started;
  std::map<std::string, std::vector<pid_t>> finished;
  /// Starts per process.
  std::map<pid_t, std::size_t> starts_by_pid;
  /// Runs held per process (`H` lines: see scheduler_worker::hold_new_runs).
  std::map<pid_t, std::size_t> held_by_pid;

  /// Reads and merges journals; throws std::runtime_error on a malformed line (a torn last
  /// line of a killed worker is skipped).
  static run_journal read(const std::vector<std::filesystem::path>& journals,
                          bool per_occurrence = false);
};

/// "" when every key ran exactly once; else how many did not and a few of them
/// (`task-7 x2`), for an assertion's message.
std::string not_exactly_once(const std::map<std::string, std::vector<pid_t>>& runs);

/// Schedules `tasks` with up to `parallel` schedule() calls in flight (store::schedule_many).
boost::asio::awaitable<void> schedule_all(schedule::store& tasks, std::vector<schedule::task> batch,
                                          std::size_t parallel = 64);

/// `count` one-off tasks of type "record", ids `<prefix>0` ... , due from `first_due` on,
/// spread over `spread`.
std::vector<schedule::task> record_tasks(const std::string& prefix, std::size_t count,
                                         schedule::time_point first_due,
                                         std::chrono::milliseconds spread = {});

/// Polls `tasks.stats()` every 100 ms until `done(stats)`; store errors are retried (the
/// server may be restarting). Throws std::runtime_error, with the last stats, the last
/// store error and the workers' logs, when a worker that was not killed exits, a task is
/// dead-lettered, or `limit` passes.
boost::asio::awaitable<schedule::store_stats> wait_for_store(
    schedule::store& tasks, scheduler_workers& workers,
    std::function<bool(const schedule::store_stats&)> done, std::chrono::milliseconds limit,
    std::string what);

/// True when nothing is waiting, in flight or dead.
bool drained(const schedule::store_stats& s);

std::string to_string(const schedule::store_stats& s);

}  // namespace corvo::test
