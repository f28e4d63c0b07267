#pragma once
// A fleet of stream_worker processes (test/programs/stream_worker.cpp) for the multi-process
// stream tests, and their journals read back.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace corvo::test {

/// The handler runs recorded in the journals: entry id → pid of each run, in journal order
/// per process (deliveries beside it).
struct stream_journal {
  struct run {
    pid_t pid = 0;
    std::uint64_t deliveries = 0;
  };
  std::map<std::string, std::vector<run>> runs;

  /// Reads and merges journals (a torn last line of a killed worker is skipped).
  static stream_journal read(const std::vector<std::filesystem::path>& journals);
};

class stream_workers {
 public:
  /// Starts `count` workers of `program` with `arguments` (each gets its own --journal and
  /// --consumer worker-<i>) and waits until each printed `ready`.
  stream_workers(std::filesystem::path program, std::size_t count,
                 std::vector<std::string> arguments);
  ~stream_workers();

  std::size_t size() const noexcept { return processes_.size(); }
  pid_t pid(std::size_t i) const { return processes_.at(i).pid(); }
  std::string consumer_name(std::size_t i) const { return "worker-" + std::to_string(i); }
  std::vector<std::filesystem::path> journals() const;
  stream_journal journal() const { return stream_journal::read(journals()); }

  /// SIGKILL worker i and reap it.
  void kill(std::size_t i);
  /// Throws std::runtime_error with its log if a worker that was not killed has exited.
  void check_alive();
  /// SIGTERM every running worker; failure descriptions of those not exiting with 0.
  std::vector<std::string> stop_all(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  std::string log_tail(std::size_t i) const;

 private:
  temp_dir dir_;
  std::vector<child_process> processes_;
  std::vector<bool> killed_;
};

}  // namespace corvo::test
