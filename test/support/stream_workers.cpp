#include "support/stream_workers.hpp"

#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace corvo::test {

stream_journal stream_journal::read(const std::vector<std::filesystem::path>& journals) {
  stream_journal out;
  for (const auto& path : journals) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string kind, stream, id;
      run r;
      if (!(fields >> kind >> r.pid >> stream >> id >> r.deliveries) || kind != "H") {
        if (in.peek() == std::char_traits<char>::eof()) {
          break;  // torn last line of a killed worker
        }
        throw std::runtime_error("malformed journal line in " + path.string() + ": " + line);
      }
      out.runs[id].push_back(r);
    }
  }
  return out;
}

stream_workers::stream_workers(std::filesystem::path program, std::size_t count,
                               std::vector<std::string> arguments)
    : dir_("stream-workers") {
  for (std::size_t i = 0; i < count; ++i) {
    auto argv = arguments;
    argv.insert(argv.begin(), program.string());
    argv.insert(argv.end(), {"--journal", (dir_.path() / ("journal-" + std::to_string(i))).string(),
                             "--consumer", consumer_name(i)});
    processes_.emplace_back(argv, dir_.path(), dir_.path() / ("log-" + std::to_string(i)));
    killed_.push_back(false);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (std::size_t i = 0; i < count; ++i) {
    for (;;) {
      std::ifstream log(dir_.path() / ("log-" + std::to_string(i)));
      std::string text((std::istreambuf_iterator<char>(log)), {});
      if (text.find("ready ") != std::string::npos) {
        break;
      }
      if (!processes_[i].running() || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("stream_worker " + std::to_string(i) + " not ready:\n" +
                                 log_tail(i));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

stream_workers::~stream_workers() = default;

std::vector<std::filesystem::path> stream_workers::journals() const {
  std::vector<std::filesystem::path> out;
  for (std::size_t i = 0; i < processes_.size(); ++i) {
    out.push_back(dir_.path() / ("journal-" + std::to_string(i)));
  }
  return out;
}

void stream_workers::kill(std::size_t i) {
  killed_.at(i) = true;
  processes_.at(i).kill(SIGKILL);
  processes_.at(i).wait();
}

void stream_workers::check_alive() {
  for (std::size_t i = 0; i < processes_.size(); ++i) {
    if (!killed_[i] && !processes_[i].running()) {
      throw std::runtime_error("stream_worker " + std::to_string(i) + " exited:\n" + log_tail(i));
    }
  }
}

std::vector<std::string> stream_workers::stop_all(std::chrono::milliseconds timeout) {
  std::vector<std::string> problems;
  for (std::size_t i = 0; i < processes_.size(); ++i) {
    if (killed_[i]) {
      continue;
    }
    const int status = processes_[i].terminate_and_wait(timeout);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      problems.push_back("stream_worker " + std::to_string(i) + " ended with status " +
                         std::to_string(status) + ":\n" + log_tail(i));
    }
  }
  return problems;
}

std::string stream_workers::log_tail(std::size_t i) const {
  return tail_of_file(dir_.path() / ("log-" + std::to_string(i)), 30);
}

}  // namespace corvo::test
