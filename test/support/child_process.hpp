#pragma once
// Child processes for hermetic tests: servers started by a test (redis-server) and short
// commands whose output the test reads (redis-cli, openssl).
//
// Invariant: a `child_process` never outlives its owner. The child is killed when the test
// process dies (PR_SET_PDEATHSIG) and the destructor kills and reaps it, so a failing or
// throwing test leaves no stray server behind.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace corvo::test {

/// A program running as a child of the test process, its stdout and stderr appended to a
/// log file. Movable, not copyable.
class child_process {
 public:
  /// Starts `argv[0]` (looked up in PATH) with `argv`, in `working_dir`, stdout and stderr
  /// appended to `log_path`. Throws `std::system_error` if the program cannot be started
  /// (including when it is not found: exec failures are reported back by the child).
  child_process(const std::vector<std::string>& argv, const std::filesystem::path& working_dir,
                const std::filesystem::path& log_path);
  /// Kills (SIGKILL) and reaps the child if it is still running.
  ~child_process();

  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The child's process id; stays valid (but refers to a reaped process) after it exited.
  pid_t pid() const noexcept { return pid_; }

  /// True while the child has not exited. Reaps it if it has.
  bool running();

  /// Sends `signal` to the child if it is still running; does not wait.
  void kill(int signal = SIGKILL);

  /// SIGTERM, then waits up to `timeout`; SIGKILL if it is still running then. Returns the
  /// wait status (as from waitpid) of the reaped child.
  int terminate_and_wait(std::chrono::milliseconds timeout);

  /// Waits for the child to exit and returns its wait status (as from waitpid).
  int wait();

  /// Waits up to `timeout` for the child to exit; the wait status, or nothing on timeout.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);

  /// The wait status once the child has been reaped.
  std::optional<int> exit_status() const noexcept { return status_; }

 private:
  bool try_reap();
  void reset() noexcept;

  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// What a synchronous command produced.
struct command_result {
  /// Exit code if the command exited normally; 128 + signal number if it was killed.
  int exit_code = -1;
  std::string out;         ///< everything written to stdout
  std::string err;         ///< everything written to stderr
  bool timed_out = false;  ///< the command was killed because it ran past its timeout
};

/// Runs `argv` to completion (stdin is /dev/null) and captures stdout and stderr. A command
/// still running after `timeout` is killed and reported with `timed_out`. Throws
/// `std::system_error` only if the program cannot be started.
command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout = std::chrono::seconds{30},
                           const std::filesystem::path& working_dir = {});

/// Like `run_command`, but throws `std::runtime_error` (with the command line, exit code
/// and stderr) unless the command exits with 0. Returns stdout.
std::string run_command_checked(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout = std::chrono::seconds{30},
                                const std::filesystem::path& working_dir = {});

/// The last `max_lines` lines of a text file (empty if it cannot be read); for error messages.
std::string tail_of_file(const std::filesystem::path& path, std::size_t max_lines = 20);

/// True if a process with this id exists (zombies included).
bool process_exists(pid_t pid);

}  // namespace corvo::test
