#include "support/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace corvo::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

// A file descriptor closed on scope exit.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { close(); }
  int get() const noexcept { return fd_; }
  void close() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_ = -1;
};

std::pair<unique_fd, unique_fd> make_pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
    throw_errno(errno, "pipe2");
  }
  return {unique_fd{fds[0]}, unique_fd{fds[1]}};
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) {
    if (!line.empty()) {
      line += ' ';
    }
    line += arg;
  }
  return line;
}

// Forks and execs `argv` with the given descriptors as stdin/stdout/stderr. Only
// async-signal-safe calls run in the child, since the test process may have threads
// (librdkafka, sanitizers). The exec error, if any, comes back through a CLOEXEC pipe.
pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& working_dir,
            int stdin_fd, int stdout_fd, int stderr_fd) {
  if (argv.empty()) {
    throw std::invalid_argument("spawn: empty argv");
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  const std::string dir = working_dir.string();
  auto [error_read, error_write] = make_pipe();
  const pid_t parent = ::getpid();
  const int error_fd = error_write.get();

  const pid_t pid = ::fork();
  if (pid < 0) {
    throw_errno(errno, "fork");
  }
  if (pid == 0) {
    auto fail = [&](int error) {
      [[maybe_unused]] auto written = ::write(error_fd, &error, sizeof error);
      ::_exit(127);
    };
    // The death signal is tied to the forking thread; tests fork from their main thread.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
      fail(errno);
    }
    if (::getppid() != parent) {  // the parent died before prctl took effect
      ::_exit(127);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) {
      fail(errno);
    }
    if (!dir.empty() && ::chdir(dir.c_str()) != 0) {
      fail(errno);
    }
    // Do not leak the test's sockets and files into servers.
    ::close_range(3U, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvp(args[0], args.data());
    fail(errno);
  }

  error_write.close();
  int child_error = 0;
  ssize_t got = 0;
  do {
    got = ::read(error_read.get(), &child_error, sizeof child_error);
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    int ignored = 0;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    throw_errno(child_error, "cannot start `" + command_line(argv) + "`");
  }
  return pid;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv,
                             const std::filesystem::path& working_dir,
                             const std::filesystem::path& log_path) {
  unique_fd log{::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (log.get() < 0) {
    throw_errno(errno, "cannot open log file " + log_path.string());
  }
  unique_fd null_in{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null_in.get() < 0) {
    throw_errno(errno, "cannot open /dev/null");
  }
  pid_ = spawn(argv, working_dir, null_in.get(), log.get(), log.get());
}

child_process::~child_process() {
  reset();
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

void child_process::reset() noexcept {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
  }
}

bool child_process::try_reap() {
  if (pid_ <= 0 || status_) {
    return true;
  }
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_) {
    status_ = status;
    return true;
  }
  if (reaped < 0 && errno == ECHILD) {  // someone else reaped it; treat as gone
    status_ = -1;
    return true;
  }
  return false;
}

bool child_process::running() {
  return !try_reap();
}

void child_process::kill(int signal) {
  if (running()) {
    ::kill(pid_, signal);
  }
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  while (!try_reap()) {
    if (clock_type::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(5ms);
  }
  return status_;
}

int child_process::wait() {
  if (pid_ > 0 && !status_) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) {
        status = -1;
        break;
      }
    }
    status_ = status;
  }
  return status_.value_or(-1);
}

int child_process::terminate_and_wait(std::chrono::milliseconds timeout) {
  kill(SIGTERM);
  if (auto status = wait_for(timeout)) {
    return *status;
  }
  kill(SIGKILL);
  return wait();
}

command_result run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           const std::filesystem::path& working_dir) {
  auto [out_read, out_write] = make_pipe();
  auto [err_read, err_write] = make_pipe();
  unique_fd null_in{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null_in.get() < 0) {
    throw_errno(errno, "cannot open /dev/null");
  }
  const pid_t pid = spawn(argv, working_dir, null_in.get(), out_write.get(), err_write.get());
  out_write.close();
  err_write.close();

  command_result result;
  const auto deadline = clock_type::now() + timeout;
  std::array<pollfd, 2> fds{pollfd{out_read.get(), POLLIN, 0}, pollfd{err_read.get(), POLLIN, 0}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_streams = 2;
  while (open_streams > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) {
      throw_errno(errno, "poll");
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      std::array<char, 4096> buffer{};
      const ssize_t got = ::read(fds[i].fd, buffer.data(), buffer.size());
      if (got > 0) {
        sinks[i]->append(buffer.data(), static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;  // poll ignores negative descriptors
        --open_streams;
      }
    }
  }
  // Both streams closed: the command normally has exited or is about to.
  int status = 0;
  while (!result.timed_out && ::waitpid(pid, &status, WNOHANG) == 0) {
    if (clock_type::now() >= deadline) {
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  if (result.timed_out) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  result.exit_code = exit_code_of(status);
  return result;
}

std::string run_command_checked(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout,
                                const std::filesystem::path& working_dir) {
  auto result = run_command(argv, timeout, working_dir);
  if (result.timed_out || result.exit_code != 0) {
    std::ostringstream message;
    message << "`" << command_line(argv) << "` "
            << (result.timed_out ? "timed out"
                                 : "failed with exit code " + std::to_string(result.exit_code))
            << ": " << result.err << result.out;
    throw std::runtime_error(message.str());
  }
  return std::move(result.out);
}

std::string tail_of_file(const std::filesystem::path& path, std::size_t max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (lines.size() > max_lines) {
      lines.pop_front();
    }
  }
  std::string text;
  for (const auto& line : lines) {
    text += line;
    text += '\n';
  }
  return text;
}

bool process_exists(pid_t pid) {
  if (pid <= 0) {
    return false;
  }
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace corvo::test
