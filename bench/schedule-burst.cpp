// Burst throughput: tasks already due, claim → handler → ack, direct sink.
//
//   scripts/bench schedule-burst [--tasks 100000] [--max-in-flight 512] [--batch 512]
//                                [--provider redis|memory] [--events] [--commands]
//                                [--compatible-leases]
//
// Schedules `tasks` tasks due in the past (not timed), then starts one dispatcher and times
// until every task has been acknowledged in the store. Target (issue 15): ≥ 200,000 tasks/s.
// Where the time goes, over the timed part only: `server_cpu_s` (redis-server's user + system
// CPU, from INFO cpu), `client_cpu_s` (this process, /proc), `scripts` (EVALSHA calls:
// claims + ack batches) and `claims`. `--events`: the store writes task events
// (`scheduler.events.enabled`, docs/scheduler.md "Task events"), to measure their cost.
// `--commands` (Redis): one more JSON line per command the server ran in the timed part, from
// INFO commandstats (reset when the clock starts): `calls`, `usec` and both per task. Redis
// counts the commands a script calls as well, so `evalsha`'s time includes theirs.
// `--compatible-leases` (Redis): the claims write each lease into its record
// (redis_store_options::compatible_leases, for rolling upgrades), to measure what that costs.

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <iostream>
#include <string>

#include "support/report.hpp"
#include "support/schedule_setup.hpp"

namespace asio = boost::asio;
namespace po = boost::program_options;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> noop_run() {
  co_return;
}

struct noop_handler {
  asio::awaitable<void> operator()(const claimed_task&) const { return noop_run(); }
};

asio::awaitable<void> schedule_range(store& tasks, std::size_t from, std::size_t to,
                                     time_point due) {
  for (std::size_t i = from; i < to; ++i) {
    task t;
    t.id = "burst-" + std::to_string(i);
    t.type = "bench";
    t.due = due;
    co_await tasks.schedule(std::move(t));
  }
}

struct usage {
  double server_cpu = 0, client_cpu = 0, scripts = 0;
  std::string commandstats;  // INFO commandstats as read
};

usage measure(corvo::test::redis_server* server) {
  usage u;
  u.client_cpu = corvo::bench::process_cpu_seconds(::getpid());
  if (server != nullptr) {
    const std::string cpu = server->cli("INFO", "cpu");
    u.server_cpu = corvo::bench::info_number(cpu, "used_cpu_user:") +
                   corvo::bench::info_number(cpu, "used_cpu_sys:");
    u.commandstats = server->cli("INFO", "commandstats");
    u.scripts = corvo::bench::info_number(u.commandstats, "cmdstat_evalsha:calls=");
  }
  return u;
}

// One line per command of INFO commandstats: "cmdstat_zadd:calls=N,usec=U,...".
void emit_commands(const std::string& stats, std::size_t tasks) {
  std::size_t at = 0;
  while ((at = stats.find("cmdstat_", at)) != std::string::npos) {
    const auto colon = stats.find(':', at);
    const auto end = stats.find('\n', at);
    if (colon == std::string::npos || colon > end) {
      break;
    }
    const std::string name = stats.substr(at + 8, colon - at - 8);
    const std::string line = stats.substr(colon, end - colon);
    const double calls = corvo::bench::info_number(line, ":calls=");
    const double usec = corvo::bench::info_number(line, ",usec=");
    if (name != "info" && name != "config") {
      corvo::bench::emit({{"bench", "schedule-burst-commands"},
                          {"cmd", name},
                          {"calls", calls},
                          {"usec", usec},
                          {"calls_per_task", calls / static_cast<double>(tasks)},
                          {"usec_per_task", usec / static_cast<double>(tasks)}});
    }
    at = end;
  }
}

asio::awaitable<void> drive(store& tasks, dispatcher& d, std::size_t count, double& seconds,
                            corvo::test::redis_server* server, usage& used, bool commands) {
  auto ex = co_await asio::this_coro::executor;
  {
    corvo::task_group writers(ex);  // 64 concurrent writers: pipelined set-up
    const std::size_t per = (count + 63) / 64;
    const auto due = now() - 1s;
    for (std::size_t from = 0; from < count; from += per) {
      co_await writers.spawn(schedule_range(tasks, from, std::min(count, from + per), due));
    }
    co_await writers.join();
  }
  corvo::task_group group(ex);
  if (commands && server != nullptr) {
    server->cli("CONFIG", "RESETSTAT");
  }
  const usage before = measure(server);
  const auto start = std::chrono::steady_clock::now();
  co_await group.spawn(d.run());
  while (d.stats().succeeded < count) {
    co_await corvo::sleep_for(1ms);
  }
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const usage after = measure(server);
  used = {after.server_cpu - before.server_cpu,
          after.client_cpu - before.client_cpu,
          after.scripts - before.scripts,
          {}};
  if (commands && server != nullptr) {
    emit_commands(after.commandstats, count);  // reset when the clock started
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t tasks = 100'000, max_in_flight = 512, batch = 512;
  std::string provider = "redis";
  bool events = false, commands = false, compatible_leases = false;
  po::options_description options("schedule-burst");
  options.add_options()("help", "this text")("tasks", po::value(&tasks)->default_value(100'000),
                                             "tasks")(
      "max-in-flight", po::value(&max_in_flight)->default_value(512), "dispatcher parallelism")(
      "batch", po::value(&batch)->default_value(512), "claim batch")(
      "provider", po::value(&provider)->default_value("redis"), "redis or memory")(
      "events", po::bool_switch(&events), "write task events (scheduler.events.enabled)")(
      "commands", po::bool_switch(&commands),
      "also print the server's time per command (INFO commandstats)")(
      "compatible-leases", po::bool_switch(&compatible_leases),
      "write each lease into its record (redis_store_options::compatible_leases)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});

  asio::io_context ctx(1);
  redis_store_options store_options;
  store_options.name_space = "burst";
  store_options.events.enabled = events;
  store_options.compatible_leases = compatible_leases;
  auto setup = corvo::bench::schedule_setup::open(ctx, provider, store_options);
  if (!setup) {
    return 2;
  }
  auto& tasks_store = setup->store();
  if (auto* memory = dynamic_cast<memory_store*>(&tasks_store); memory != nullptr) {
    memory->set_events(store_options.events);
  }
  handler_registry handlers;
  handlers.on_task("bench", noop_handler{});
  direct_sink sink(handlers);
  dispatcher_options dopts;
  dopts.max_in_flight = max_in_flight;
  dopts.claim_batch = batch;
  dispatcher d(tasks_store, sink, dopts);
  double seconds = 0;
  usage used;
  asio::co_spawn(ctx, drive(tasks_store, d, tasks, seconds, setup->server(), used, commands),
                 setup->on_done());
  ctx.run();
  corvo::bench::emit({{"bench", "schedule-burst"},
                      {"impl", "corvo"},
                      {"provider", provider},
                      {"events", events},
                      {"compatible_leases", compatible_leases},
                      {"n", tasks},
                      {"per_s", static_cast<double>(tasks) / seconds},
                      {"seconds", seconds},
                      {"claims", d.stats().claims},
                      {"scripts", used.scripts},
                      {"server_cpu_s", used.server_cpu},
                      {"client_cpu_s", used.client_cpu},
                      {"max_in_flight", max_in_flight},
                      {"batch", batch}});
  return 0;
}
