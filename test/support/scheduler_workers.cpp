#include "support/scheduler_workers.hpp"

#include <sys/wait.h>

#include <boost/asio/this_coro.hpp>
#include <corvo/core/backoff.hpp>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace corvo::test {
namespace {

using namespace std::chrono_literals;

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return "exit code " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "wait status " + std::to_string(status);
}

// The first line of `path` that starts with `prefix`, without the prefix.
std::optional<std::string> line_starting_with(const std::filesystem::path& path,
                                              std::string_view prefix) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(prefix)) {
      return line.substr(prefix.size());
    }
  }
  return std::nullopt;
}

}  // namespace

// ---- scheduler_worker -----------------------------------------------------------------------

scheduler_worker::scheduler_worker(const std::filesystem::path& program,
                                   const std::filesystem::path& dir, const std::string& name,
                                   std::vector<std::string> args, bool holdable)
    : name_(name),
      journal_(dir / (name + ".journal")),
      log_(dir / (name + ".log")),
      hold_(dir / (name + ".hold")),
      process_(
          [&] {
            std::vector<std::string> argv{program.string()};
            argv.insert(argv.end(), args.begin(), args.end());
            argv.insert(argv.end(), {"--journal", journal_.string()});
            if (holdable) {
              argv.insert(argv.end(), {"--hold-file", hold_.string()});
            }
            return argv;
          }(),
          dir, log_) {}

void scheduler_worker::hold_new_runs() {
  std::ofstream(hold_).put('\n');
  if (!std::filesystem::exists(hold_)) {
    throw std::runtime_error("cannot create " + hold_.string());
  }
}

void scheduler_worker::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!line_starting_with(log_, "ready ")) {
    if (!process_.running()) {
      throw std::runtime_error("worker " + name_ + " exited before it was ready (" +
                               describe_status(*process_.exit_status()) + "):\n" + log_tail());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("worker " + name_ + " not ready after " +
                               std::to_string(timeout.count()) + " ms:\n" + log_tail());
    }
    std::this_thread::sleep_for(20ms);
  }
}

void scheduler_worker::kill() {
  killed_ = true;
  process_.kill(SIGKILL);
  process_.wait();
}

int scheduler_worker::stop(std::chrono::milliseconds timeout) {
  return process_.terminate_and_wait(timeout);
}

std::optional<scheduler_worker_stats> scheduler_worker::stats() const {
  const auto line = line_starting_with(log_, "stats ");
  if (!line) {
    return std::nullopt;
  }
  scheduler_worker_stats s;
  const std::map<std::string, std::uint64_t*> fields{
      {"claimed", &s.claimed},   {"succeeded", &s.succeeded},
      {"retried", &s.retried},   {"dead_lettered", &s.dead_lettered},
      {"stale", &s.stale},       {"store_errors", &s.store_errors},
      {"connects", &s.connects}, {"claims", &s.claims}};
  std::istringstream words(*line);
  for (std::string word; words >> word;) {
    const auto eq = word.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    if (const auto it = fields.find(word.substr(0, eq)); it != fields.end()) {
      *it->second = std::stoull(word.substr(eq + 1));
    }
  }
  return s;
}

std::string scheduler_worker::log_tail(std::size_t lines) const {
  // Leak reports and stack frames ("    #12 0x... in ...") would push the reason out.
  std::ifstream in(log_);
  std::deque<std::string> kept;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.starts_with("    #") || line.starts_with("Indirect leak") ||
        line.starts_with("Direct leak")) {
      continue;
    }
    kept.push_back(std::move(line));
    if (kept.size() > lines) {
      kept.pop_front();
    }
  }
  std::string text;
  for (const auto& line : kept) {
    text += line + '\n';
  }
  return text;
}

// ---- scheduler_worker_config ----------------------------------------------------------------

scheduler_worker_config scheduler_worker_config::standalone(const std::string& url) {
  scheduler_worker_config c;
  c.connection = {"--redis", url};
  return c;
}

scheduler_worker_config scheduler_worker_config::cluster(const std::vector<std::string>& seeds) {
  scheduler_worker_config c;
  for (const auto& seed : seeds) {
    c.connection.push_back("--cluster");
    c.connection.push_back(seed);
  }
  return c;
}

std::vector<std::string> scheduler_worker_config::arguments() const {
  auto args = connection;
  const auto add = [&](const char* option, auto value) {
    args.push_back(option);
    args.push_back(std::to_string(value));
  };
  args.push_back("--namespace");
  args.push_back(name_space);
  add("--shards", shards);
  add("--max-in-flight", max_in_flight);
  add("--claim-batch", claim_batch);
  add("--lease", lease.count());
  add("--max-sleep", max_sleep.count());
  if (!abort_task.empty()) {
    args.push_back("--abort-task");
    args.push_back(abort_task);
  }
  add("--handler-delay", handler_delay.count());
  if (request_timeout) {
    add("--request-timeout", request_timeout->count());
  }
  for (const auto& [option, values] :
       {std::pair{"--type", &types}, std::pair{"--limit", &limits}}) {
    for (const auto& v : *values) {
      args.push_back(option);
      args.push_back(v);
    }
  }
  if (!count_running.empty()) {
    args.push_back("--count-running");
    args.push_back(count_running);
  }
  return args;
}

// ---- scheduler_workers ----------------------------------------------------------------------

scheduler_workers::scheduler_workers(std::filesystem::path program, std::size_t count,
                                     const scheduler_worker_config& config)
    : dir_("scheduler-workers") {
  if (!std::filesystem::exists(program)) {
    throw std::runtime_error("worker program " + program.string() + " does not exist");
  }
  for (std::size_t i = 0; i < count; ++i) {
    workers_.push_back(std::make_unique<scheduler_worker>(
        program, dir_.path(), "worker-" + std::to_string(i), config.arguments(), config.holdable));
  }
  for (auto& w : workers_) {
    w->wait_ready();
  }
}

std::vector<std::filesystem::path> scheduler_workers::journals() const {
  std::vector<std::filesystem::path> out;
  for (const auto& w : workers_) {
    out.push_back(w->journal_path());
  }
  return out;
}

void scheduler_workers::check_alive() {
  for (auto& w : workers_) {
    if (!w->killed() && !w->running()) {
      throw std::runtime_error("worker " + w->name() + " (pid " + std::to_string(w->pid()) +
                               ") exited unexpectedly:\n" + w->log_tail());
    }
  }
}

std::vector<std::string> scheduler_workers::stop_all(std::chrono::milliseconds timeout) {
  std::vector<std::string> problems;
  for (auto& w : workers_) {
    if (w->killed()) {
      continue;
    }
    const int status = w->stop(timeout);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      problems.push_back("worker " + w->name() + " did not stop cleanly (" +
                         describe_status(status) + "):\n" + w->log_tail());
    }
  }
  return problems;
}

std::string scheduler_workers::describe() {
  std::string text;
  for (auto& w : workers_) {
    text += "--- " + w->name() + " (pid " + std::to_string(w->pid()) +
            (w->killed()    ? ", killed"
             : w->running() ? ", running"
                            : ", exited") +
            ")\n" + w->log_tail(8);
  }
  return text;
}

// ---- run_journal ----------------------------------------------------------------------------

run_journal run_journal::read(const std::vector<std::filesystem::path>& journals,
                              bool per_occurrence) {
  run_journal out;
  for (const auto& path : journals) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      const bool complete = !in.eof();  // getline hit a newline: the line is whole
      std::istringstream words(line);
      char event = 0;
      pid_t pid = 0;
      std::string id, due;  // due: the occurrence the run belongs to
      if (!(words >> event >> pid >> id >> due) || (event != 'S' && event != 'F' && event != 'H')) {
        if (!complete) {
          break;  // a killed worker's torn last line
        }
        throw std::runtime_error("malformed journal line in " + path.string() + ": " + line);
      }
      const auto key = per_occurrence ? id + "@" + due : id;
      if (event == 'S') {
        out.started[key].push_back(pid);
        ++out.starts_by_pid[pid];
      } else if (event == 'H') {
        ++out.held_by_pid[pid];
      } else {
        out.finished[key].push_back(pid);
      }
    }
  }
  return out;
}

std::string not_exactly_once(const std::map<std::string, std::vector<pid_t>>& runs) {
  std::size_t count = 0;
  std::string examples;
  for (const auto& [key, pids] : runs) {
    if (pids.size() != 1 && ++count <= 5) {
      examples += " " + key + " x" + std::to_string(pids.size());
    }
  }
  return count == 0 ? std::string() : std::to_string(count) + " not exactly once, e.g." + examples;
}

// ---- parent-side helpers --------------------------------------------------------------------

boost::asio::awaitable<void> schedule_all(schedule::store& tasks, std::vector<schedule::task> batch,
                                          std::size_t parallel) {
  co_await tasks.schedule_many(std::move(batch), parallel);
}

std::vector<schedule::task> record_tasks(const std::string& prefix, std::size_t count,
                                         schedule::time_point first_due,
                                         std::chrono::milliseconds spread) {
  std::vector<schedule::task> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    schedule::task t;
    t.id = prefix + std::to_string(i);
    t.type = "record";
    t.due = first_due;
    if (spread.count() > 0 && count > 1) {
      t.due += std::chrono::duration_cast<std::chrono::microseconds>(spread) *
               static_cast<long long>(i) / static_cast<long long>(count - 1);
    }
    out.push_back(std::move(t));
  }
  return out;
}

bool drained(const schedule::store_stats& s) {
  return s.scheduled == 0 && s.in_flight == 0 && s.dead == 0;
}

std::string to_string(const schedule::store_stats& s) {
  return "scheduled=" + std::to_string(s.scheduled) + " due_now=" + std::to_string(s.due_now) +
         " in_flight=" + std::to_string(s.in_flight) + " dead=" + std::to_string(s.dead);
}

boost::asio::awaitable<schedule::store_stats> wait_for_store(
    schedule::store& tasks, scheduler_workers& workers,
    std::function<bool(const schedule::store_stats&)> done, std::chrono::milliseconds limit,
    std::string what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::optional<schedule::store_stats> last;
  std::string last_error;
  for (;;) {
    bool fresh = false;
    try {
      last = co_await tasks.stats();
      fresh = true;
    } catch (const std::exception& e) {
      last_error = e.what();  // the server may be restarting: ask again
    }
    if (fresh) {
      if (last->dead > 0) {
        throw std::runtime_error(what + ": a task was dead-lettered (" + to_string(*last) + ")\n" +
                                 workers.describe());
      }
      if (done(*last)) {
        co_return *last;
      }
    }
    workers.check_alive();
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(what + ": not done after " + std::to_string(limit.count()) +
                               " ms; last stats: " + (last ? to_string(*last) : "none") +
                               (last_error.empty() ? "" : "; last store error: " + last_error) +
                               "\n" + workers.describe());
    }
    co_await sleep_for(100ms);
  }
}

}  // namespace corvo::test
