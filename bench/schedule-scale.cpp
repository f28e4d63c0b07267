// Burst on a Redis Cluster with 1, 2 and 3 dispatcher processes: tasks already due,
// claim → no-op handler → ack, direct sink.
//
//   scripts/bench schedule-scale [--tasks 60000] [--processes 1,2,3] [--max-in-flight 512]
//                                [--batch 512] [--shards 16]
//
// The program starts a 6-node cluster (3 masters, 3 replicas). For each process count it
// schedules `tasks` tasks due now (spread over the shards, so over the masters) with the
// namespace paused, starts the dispatcher processes (this program with --worker), waits
// until each has made its first claim, resumes the namespace and times until no task is
// left (scheduled + in flight = 0). One JSON line per process count: `per_s`, each master's
// CPU seconds over the timed part (`server_cpu_s`, from INFO cpu), the workers' CPU
// (`client_cpu_s`, from /proc) and claims. The machine running it has 2 cores for the
// three masters, their replicas and the dispatchers: read the CPU columns to see what limits
// it, not a scaling curve.

#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/redis_cluster.hpp"
#include "support/report.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace po = boost::program_options;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

const std::string name_space = "scale";

asio::awaitable<void> noop_run() {
  co_return;
}

struct noop_handler {
  asio::awaitable<void> operator()(const claimed_task&) const { return noop_run(); }
};

struct worker_settings {
  std::vector<std::string> seeds;
  std::size_t max_in_flight = 512, batch = 512;
  unsigned shards = 16;
};

redis_store_options store_options(unsigned shards) {
  redis_store_options o;
  o.name_space = name_space;
  o.shards = shards;
  return o;
}

// --worker: one dispatcher until SIGTERM; prints "ready" after its first claim and, at the
// end, "stats <claims> <cpu seconds>" counted from its first task on.
int run_worker(const worker_settings& w) {
  asio::io_context ctx(1);
  const auto cfg = corvo::redis::client_config::from_cluster_seeds(w.seeds);
  corvo::redis::client client(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  redis_store tasks(client, cfg, store_options(w.shards));
  handler_registry handlers;
  handlers.on_task("bench", noop_handler{});
  direct_sink sink(handlers);
  dispatcher_options o;
  o.max_in_flight = w.max_in_flight;
  o.claim_batch = w.batch;
  o.max_sleep = 5ms;  // the resume's wake-up may come before the subscription: look again soon
  dispatcher d(tasks, sink, o);
  asio::steady_timer poll(ctx);
  asio::cancellation_signal stop;
  asio::co_spawn(ctx, d.run(), asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) {
                   poll.cancel();
                   client.cancel();
                 }));
  asio::signal_set signals(ctx, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) {
      stop.emit(asio::cancellation_type::terminal);
    }
  });
  // "ready" after the first claim (the namespace is still paused); the counts of the timed
  // part start at the first task claimed, after the resume.
  bool ready = false;
  std::uint64_t claims_before = 0;
  double cpu_before = 0;
  std::function<void()> watch = [&] {
    if (!ready && d.stats().claims > 0) {
      ready = true;
      std::cout << "ready" << std::endl;
    }
    if (ready && d.stats().claimed > 0) {
      claims_before = d.stats().claims - 1;
      cpu_before = corvo::bench::process_cpu_seconds(::getpid());
      return;
    }
    poll.expires_after(1ms);
    poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        watch();
      }
    });
  };
  watch();
  ctx.run();
  std::cout << "stats " << d.stats().claims - claims_before << " "
            << corvo::bench::process_cpu_seconds(::getpid()) - cpu_before << std::endl;
  return 0;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double master_cpu(corvo::test::redis_server& node) {
  const std::string info = node.cli("INFO", "cpu");
  return corvo::bench::info_number(info, "used_cpu_user:") +
         corvo::bench::info_number(info, "used_cpu_sys:");
}

asio::awaitable<void> schedule_all(store& tasks, std::size_t count) {
  std::vector<task> batch;
  const auto due = now() - 1s;
  for (std::size_t i = 0; i < count; ++i) {
    task t;
    t.id = "scale-" + std::to_string(i);
    t.type = "bench";
    t.due = due;
    batch.push_back(std::move(t));
  }
  co_await tasks.schedule_many(std::move(batch));
}

// Sets `done` when no task is left (scheduled + in flight = 0).
asio::awaitable<void> check_done(store& tasks, bool& done) {
  const auto s = co_await tasks.stats();
  done = s.scheduled == 0 && s.in_flight == 0;
}

// One round: `processes` dispatchers on `count` tasks.
void run_round(corvo::test::redis_cluster& cluster, const worker_settings& w,
               const std::string& self, std::size_t count, std::size_t processes) {
  asio::io_context ctx(1);
  const auto cfg = corvo::redis::client_config::from_cluster_seeds(w.seeds);
  corvo::redis::client client(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  redis_store tasks(client, cfg, store_options(w.shards));
  // Runs one awaitable to completion on ctx (the client's run() stays spawned).
  const auto await = [&](asio::awaitable<void> op) {
    bool done = false;
    std::exception_ptr failed;
    asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e) {
      failed = e;
      done = true;
    });
    while (!done) {
      ctx.run_one();
    }
    if (failed) {
      std::rethrow_exception(failed);
    }
  };
  await(tasks.pause(""));
  await(schedule_all(tasks, count));

  corvo::test::temp_dir dir("schedule-scale");
  std::vector<corvo::test::child_process> workers;
  std::vector<std::filesystem::path> logs;
  for (std::size_t p = 0; p < processes; ++p) {
    std::vector<std::string> argv{self,
                                  "--worker",
                                  "--max-in-flight",
                                  std::to_string(w.max_in_flight),
                                  "--batch",
                                  std::to_string(w.batch),
                                  "--shards",
                                  std::to_string(w.shards)};
    for (const auto& seed : w.seeds) {
      argv.insert(argv.end(), {"--seed", seed});
    }
    logs.push_back(dir.path() / ("worker-" + std::to_string(p) + ".log"));
    workers.emplace_back(argv, dir.path(), logs.back());
  }
  for (std::size_t p = 0; p < processes; ++p) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (read_file(logs[p]).find("ready") == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline || !workers[p].running()) {
        throw std::runtime_error("worker " + std::to_string(p) +
                                 " did not get ready: " + read_file(logs[p]));
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  const auto masters = cluster.masters();
  std::vector<double> cpu_before;
  for (auto m : masters) {
    cpu_before.push_back(master_cpu(cluster.node(m)));
  }
  const auto start = std::chrono::steady_clock::now();
  await(tasks.resume(""));
  for (;;) {
    bool done = false;
    await(check_done(tasks, done));
    if (done) {
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  boost::json::array server_cpu;
  for (std::size_t i = 0; i < masters.size(); ++i) {
    server_cpu.push_back(master_cpu(cluster.node(masters[i])) - cpu_before[i]);
  }
  std::uint64_t claims = 0;
  double client_cpu = 0;
  for (std::size_t p = 0; p < processes; ++p) {
    workers[p].terminate_and_wait(30s);
    std::istringstream out(read_file(logs[p]));
    for (std::string line; std::getline(out, line);) {
      if (line.rfind("stats ", 0) == 0) {
        std::istringstream fields(line.substr(6));
        std::uint64_t c = 0;
        double cpu = 0;
        fields >> c >> cpu;
        claims += c;
        client_cpu += cpu;
      }
    }
  }
  client.cancel();
  ctx.restart();
  ctx.run();
  corvo::bench::emit({{"bench", "schedule-scale"},
                      {"impl", "corvo"},
                      {"processes", processes},
                      {"n", count},
                      {"per_s", static_cast<double>(count) / seconds},
                      {"seconds", seconds},
                      {"claims", claims},
                      {"server_cpu_s", server_cpu},
                      {"client_cpu_s", client_cpu},
                      {"max_in_flight", w.max_in_flight},
                      {"batch", w.batch},
                      {"shards", w.shards}});
}

}  // namespace

int main(int argc, char** argv) {
  worker_settings w;
  std::size_t tasks = 60'000;
  std::string processes = "1,2,3";
  bool worker = false;
  po::options_description options("schedule-scale");
  options.add_options()("help", "this text")("tasks", po::value(&tasks)->default_value(60'000),
                                             "tasks per round")(
      "processes", po::value(&processes)->default_value("1,2,3"),
      "dispatcher process counts, one round each")("max-in-flight",
                                                   po::value(&w.max_in_flight)->default_value(512),
                                                   "parallelism per dispatcher")(
      "batch", po::value(&w.batch)->default_value(512), "claim batch")(
      "shards", po::value(&w.shards)->default_value(16), "scheduler shards")(
      "worker", po::bool_switch(&worker), "(internal) run one dispatcher")(
      "seed", po::value(&w.seeds)->composing(), "(internal) cluster seed URL");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});
  if (worker) {
    return run_worker(w);
  }
  std::vector<std::size_t> counts;
  {
    std::istringstream in(processes);
    for (std::string item; std::getline(in, item, ',');) {
      std::size_t n = 0;
      try {
        n = std::stoul(item);
      } catch (const std::exception&) {
      }
      if (n == 0 || n > 16) {
        std::cerr << "schedule-scale: --processes takes counts from 1 to 16, e.g. 1,2,3\n";
        return 2;
      }
      counts.push_back(n);
    }
  }
  if (tasks == 0 || counts.empty()) {
    std::cerr << "schedule-scale: --tasks and --processes must not be empty or 0\n";
    return 2;
  }
  corvo::test::redis_cluster cluster;
  w.seeds = cluster.seed_urls();
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const auto n : counts) {
    run_round(cluster, w, self, tasks, n);
  }
  return 0;
}
