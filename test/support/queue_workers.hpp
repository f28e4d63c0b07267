#pragma once
// Multi-process queue tests: queue_worker processes (test/programs/queue_worker.cpp, run
// through scheduler_worker, which only knows how to start, kill and stop a program that
// prints `ready`), their journals read back, and the kill scenario the standalone and the
// cluster tests share.

#include <sys/types.h>

#include <chrono>
#include <corvo/queue/admin.hpp>
#include <corvo/redis/client.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace corvo::test {

/// Deliveries recorded in queue_worker journals, by body.
struct queue_journal {
  struct delivery {
    pid_t pid = 0;
    std::string id;
    std::uint32_t attempts = 0;
  };
  std::map<std::string, std::vector<delivery>> started;
  std::map<std::string, std::vector<delivery>> finished;
  /// Deliveries held by a worker's hold file (H lines): started, never to finish there.
  std::map<std::string, std::vector<delivery>> held;

  /// Reads and merges journals; a torn last line (a killed worker) is skipped; throws
  /// std::runtime_error on a malformed complete line.
  static queue_journal read(const std::vector<std::filesystem::path>& journals);
};

/// Lines in a file (for watching a journal grow).
std::size_t line_count(const std::filesystem::path& path);

/// What the kill scenario observed (the tests assert on it).
struct queue_kill_report {
  std::size_t items = 0;
  pid_t victim = 0;
  /// Bodies in the victim's processing list once its connections were gone.
  std::set<std::string> in_victim_list;
  /// Bodies whose handler was held in the victim when it was killed (its H lines).
  std::set<std::string> held_by_victim;
  /// Bodies (of the `items`) by the pids of their finished deliveries.
  std::map<std::string, std::vector<pid_t>> finished_by;
  /// Of those, the ones the victim's handler had started: the only ones expected twice.
  std::set<std::string> expected_twice;
  /// Bodies (of the `items`) with no finished delivery.
  std::set<std::string> unfinished;
  /// Bodies (of the `items`) started more than once, with the pids of their starts.
  std::map<std::string, std::vector<pid_t>> started_twice_or_more;
  /// Bodies the survivors started with attempts != (in victim list ? 1 : 0).
  std::vector<std::string> wrong_attempts;
  /// Deliveries of the poison item (all fail) and the dead letters afterwards.
  std::size_t poison_starts = 0;
  std::vector<queue::dead_letter> dead_letters;
  std::string poison_id;
  long long queue_left = -1;
  std::vector<long long> processing_left;   // per surviving worker
  std::vector<std::string> survivor_stats;  // their `stats` lines
  /// Problems that make the run invalid (a worker died, a stop failed, time ran out).
  std::vector<std::string> problems;
};

struct queue_kill_setup {
  /// The queue_worker program (CORVO_QUEUE_WORKER_PATH in a test that uses it).
  std::filesystem::path program;
  /// How to reach Redis: client config for this process, connection args for the workers.
  redis::client_config client;
  std::vector<std::string> worker_connection;
  /// Runs redis-cli with these arguments on the node that holds the queue; returns stdout.
  std::function<std::string(const std::vector<std::string>&)> cli;
  std::string queue = "jobs";
  std::size_t items = 50'000;
  std::size_t workers = 3;
  /// Once the victim's journal has this many lines, its new deliveries are held (its hold
  /// file); it is killed as soon as one is held, so items are provably in its handlers.
  std::size_t kill_after_lines = 3000;
  std::chrono::milliseconds handler_delay{1};
  std::chrono::seconds limit{150};
};

/// Pushes `items` items (bodies item-0 ...), starts `workers` reliable queue_workers (ids w0,
/// w1, ...), kills w0 (SIGKILL) mid-run while at least one item is held in its handler
/// (kill_after_lines), waits until its connections are gone and reads its
/// processing list, pushes one poison item (its handler always throws), waits until every
/// item is finished and the poison is dead, stops the survivors and reports.
queue_kill_report run_queue_kill_scenario(const queue_kill_setup& setup);

}  // namespace corvo::test
