#include "support/queue_workers.hpp"

#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/queue/producer.hpp>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"
#include "support/temp_dir.hpp"

namespace corvo::test {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

asio::awaitable<std::string> push_items(redis::client& client, std::string queue, std::size_t count,
                                        std::size_t first) {
  queue::producer jobs(client, queue);
  std::vector<std::string> bodies;
  for (std::size_t i = first; i < first + count; ++i) {
    bodies.push_back("item-" + std::to_string(i));
    if (bodies.size() == 1000) {
      co_await jobs.push_raw_batch(std::exchange(bodies, {}));
    }
  }
  if (!bodies.empty()) {
    co_await jobs.push_raw_batch(std::move(bodies));
  }
  co_return std::string();
}

asio::awaitable<std::string> push_poison(redis::client& client, std::string queue) {
  queue::producer jobs(client, queue);
  co_return co_await jobs.push_raw("poison");
}

// Runs `op` on a fresh io_context with a client that is stopped afterwards.
template <class T>
T with_client(const redis::client_config& cfg,
              std::function<asio::awaitable<T>(redis::client&)> op) {
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  return run(ctx, op(client), [&] { client.cancel(); });
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

}  // namespace

queue_journal queue_journal::read(const std::vector<std::filesystem::path>& journals) {
  queue_journal out;
  for (const auto& path : journals) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      const bool complete = !in.eof();
      std::istringstream words(line);
      char event = 0;
      delivery d;
      std::string body;
      if (!(words >> event >> d.pid >> d.id >> body >> d.attempts) ||
          (event != 'S' && event != 'F' && event != 'H')) {
        if (!complete) {
          break;
        }
        throw std::runtime_error("malformed journal line in " + path.string() + ": " + line);
      }
      auto& events = event == 'S' ? out.started : event == 'F' ? out.finished : out.held;
      events[body].push_back(std::move(d));
    }
  }
  return out;
}

std::size_t line_count(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
  }
  return n;
}

queue_kill_report run_queue_kill_scenario(const queue_kill_setup& setup) {
  queue_kill_report report;
  report.items = setup.items;
  const queue::queue_keys keys(setup.queue);
  const auto& program = setup.program;
  if (!std::filesystem::exists(program)) {
    throw std::runtime_error("queue_worker program '" + program.string() + "' does not exist");
  }
  with_client<std::string>(
      setup.client, [&](redis::client& c) { return push_items(c, setup.queue, setup.items, 0); });

  temp_dir dir("queue-workers");
  std::vector<std::unique_ptr<scheduler_worker>> workers;
  for (std::size_t i = 0; i < setup.workers; ++i) {
    auto args = setup.worker_connection;
    const std::vector<std::string> more{
        "--queue",         setup.queue,
        "--consumer",      "w" + std::to_string(i),
        "--handler-delay", std::to_string(setup.handler_delay.count()),
        "--fail-body",     "poison"};
    args.insert(args.end(), more.begin(), more.end());
    const bool holdable = i == 0;  // the victim
    workers.push_back(std::make_unique<scheduler_worker>(program, dir.path(),
                                                         "w" + std::to_string(i), args, holdable));
  }
  for (auto& w : workers) {
    w->wait_ready();
  }
  auto& victim = *workers[0];
  report.victim = victim.pid();
  const auto deadline = std::chrono::steady_clock::now() + setup.limit;
  const auto alive_check = [&] {
    for (auto& w : workers) {
      if (!w->killed() && !w->running()) {
        report.problems.push_back("worker " + w->name() + " exited:\n" + w->log_tail());
        return false;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      report.problems.push_back("time ran out");
      return false;
    }
    return true;
  };
  while (line_count(victim.journal_path()) < setup.kill_after_lines) {
    if (!alive_check()) {
      return report;
    }
    std::this_thread::sleep_for(5ms);
  }
  // Kill while an item is provably in a handler: the victim's new deliveries are held, and
  // the kill waits for the first one (a kill between two batches would prove nothing).
  victim.hold_new_runs();
  while (queue_journal::read({victim.journal_path()}).held.empty()) {
    if (!alive_check()) {
      return report;
    }
    std::this_thread::sleep_for(5ms);
  }
  victim.kill();
  for (const auto& [body, ds] : queue_journal::read({victim.journal_path()}).held) {
    report.held_by_victim.insert(body);
  }
  // Once the server has dropped the victim's connections, nothing more comes from it.
  const auto name = "name=qw-" + std::to_string(victim.pid()) + " ";
  while (setup.cli({"CLIENT", "LIST"}).find(name) != std::string::npos) {
    if (!alive_check()) {
      return report;
    }
    std::this_thread::sleep_for(10ms);
  }
  for (const auto& value : lines(setup.cli({"LRANGE", keys.processing("w0"), "0", "-1"}))) {
    report.in_victim_list.insert(std::string(queue::decode_envelope(value).body));
  }
  report.poison_id = with_client<std::string>(
      setup.client, [&](redis::client& c) { return push_poison(c, setup.queue); });

  std::vector<std::filesystem::path> journals;
  for (auto& w : workers) {
    journals.push_back(w->journal_path());
  }
  for (;;) {
    if (!alive_check()) {
      break;
    }
    const auto j = queue_journal::read(journals);
    std::size_t finished = 0;
    for (const auto& [body, ds] : j.finished) {
      finished += body != "poison" ? 1 : 0;
    }
    if (finished == setup.items && setup.cli({"LLEN", keys.dead()}) == "1") {
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  for (std::size_t i = 1; i < workers.size(); ++i) {
    const int status = workers[i]->stop();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      report.problems.push_back("worker " + workers[i]->name() + " did not stop cleanly:\n" +
                                workers[i]->log_tail());
    }
    std::ifstream log(workers[i]->log_path());
    for (std::string line; std::getline(log, line);) {
      if (line.starts_with("stats ")) {
        report.survivor_stats.push_back(line);
      }
    }
    report.processing_left.push_back(
        std::stoll(setup.cli({"LLEN", keys.processing("w" + std::to_string(i))})));
  }
  report.queue_left = std::stoll(setup.cli({"LLEN", setup.queue}));
  report.dead_letters = with_client<std::vector<queue::dead_letter>>(
      setup.client, [&](redis::client& c) { return queue::dead_letters(c, setup.queue, 0, 100); });

  const auto j = queue_journal::read(journals);
  for (std::size_t i = 0; i < setup.items; ++i) {
    const auto body = "item-" + std::to_string(i);
    if (const auto f = j.finished.find(body); f == j.finished.end()) {
      report.unfinished.insert(body);
    } else {
      for (const auto& d : f->second) {
        report.finished_by[body].push_back(d.pid);
      }
    }
    const auto it = j.started.find(body);
    if (it == j.started.end()) {
      continue;
    }
    const bool victims = report.in_victim_list.count(body) != 0;
    std::vector<pid_t> pids;
    for (const auto& d : it->second) {
      pids.push_back(d.pid);
      if (d.pid == report.victim && victims) {
        report.expected_twice.insert(body);
      }
      if (d.pid != report.victim && d.attempts != (victims ? 1u : 0u)) {
        report.wrong_attempts.push_back(body + " attempts " + std::to_string(d.attempts));
      }
    }
    if (pids.size() > 1) {
      report.started_twice_or_more[body] = pids;
    }
  }
  if (const auto p = j.started.find("poison"); p != j.started.end()) {
    report.poison_starts = p->second.size();
  }
  return report;
}

}  // namespace corvo::test
