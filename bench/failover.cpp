// Failover of a supervised process (issue 16): a local redis-server (AOF, appendfsync
// always) is killed (-9) and restarted under a process running, under health::app, a
// scheduler dispatcher, a stream consumer, a pub/sub subscriber, a reliable-queue consumer
// and a user component (test/support/failover_process.hpp), while a producer schedules a
// task, appends a stream entry and pushes a queue item every 20 ms.
//
//   scripts/bench failover [--rounds 5] [--outage-ms 500] [--probe-timeout-ms 250]
//                          [--reconnect-max-ms 250] [--drain-ms 100]
//
// Per round: stop = kill → the last component stopped; resume = Redis answering again (the
// restart returned) → the last component running; first = Redis answering → first task
// handled. The round line names the slowest component and each one's stop time. Summary
// line: bench "failover", stop_max_ms, stop_budget_ms (= probe timeout + 100 ms),
// resume_max_ms, lost (tasks, entries and items produced but never handled).
// Targets: stop ≤ probe timeout + 100 ms; resume ≤ 1 s after Redis answers; lost = 0.

#include <algorithm>
#include <boost/program_options.hpp>
#include <corvo/core/log.hpp>
#include <iostream>
#include <thread>

#include "support/failover_process.hpp"
#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace po = boost::program_options;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  while (!done()) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

double ms(steady::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  int outage_ms = 500;
  int probe_timeout_ms = 250;
  int reconnect_max_ms = 250;
  int drain_ms = 100;
  po::options_description desc("failover");
  desc.add_options()("rounds", po::value(&rounds))("outage-ms", po::value(&outage_ms))(
      "probe-timeout-ms", po::value(&probe_timeout_ms))(
      "reconnect-max-ms", po::value(&reconnect_max_ms))("drain-ms", po::value(&drain_ms));
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  corvo::log::init({.min_severity = corvo::log::severity::error});

  corvo::test::redis_server_options so;
  so.append_only = true;
  so.extra_config = {"appendfsync always"};
  corvo::test::redis_server server(so);
  corvo::test::failover_process_options o;
  o.redis_url = server.url();
  o.probe_timeout = std::chrono::milliseconds(probe_timeout_ms);
  o.reconnect_max = std::chrono::milliseconds(reconnect_max_ms);
  o.drain_timeout = std::chrono::milliseconds(drain_ms);
  corvo::test::failover_process p(o);

  std::vector<double> stops, resumes, firsts;
  for (int round = 0; round < rounds; ++round) {
    if (!wait_until([&] { return p.all_running(); }, 30s) ||
        !wait_until([&] { return p.handled().size() >= 10; }, 30s)) {
      std::cerr << "failover: the process did not start\n";
      return 1;
    }
    std::this_thread::sleep_for(200ms);
    const auto killed_at = steady::now();
    server.kill();
    if (!wait_until([&] { return p.none_running(); }, 30s)) {
      std::cerr << "failover: the components did not stop\n";
      return 1;
    }
    double stop = 0;
    std::string slowest;
    boost::json::object stops_by_component;
    for (const auto& [name, t] : p.times()) {
      const double took = ms(t.stopped - killed_at);
      stops_by_component[name] = took;
      if (took > stop) {
        stop = took;
        slowest = name;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(outage_ms));
    server.restart();
    const auto answers_at = steady::now();
    if (!wait_until([&] { return p.all_running(); }, 30s) ||
        !wait_until([&] { return p.first_handled_after(answers_at) != steady::time_point{}; },
                    30s)) {
      std::cerr << "failover: the components did not resume\n";
      return 1;
    }
    double resume = 0;
    for (const auto& [name, t] : p.times())
      resume = std::max(resume, ms(t.started - answers_at));
    const double first = ms(p.first_handled_after(answers_at) - answers_at);
    stops.push_back(stop);
    resumes.push_back(resume);
    firsts.push_back(first);
    corvo::bench::emit({{"bench", "failover"},
                        {"impl", "corvo"},
                        {"round", round + 1},
                        {"stop_ms", stop},
                        {"slowest_stop", slowest},
                        {"stop_ms_by_component", stops_by_component},
                        {"resume_ms", resume},
                        {"first_handled_ms", first}});
  }
  p.stop_producing();
  wait_until([&] { return p.everything_handled(); }, 60s);
  const auto produced = p.produced();
  const auto handled = p.handled();
  std::size_t lost = 0;
  for (const auto& id : produced)
    lost += handled.contains(id) ? 0 : 1;
  corvo::bench::emit({{"bench", "failover"},
                      {"impl", "corvo"},
                      {"n", rounds},
                      {"stop_p50_ms", percentile(stops, 0.5)},
                      {"stop_max_ms", *std::max_element(stops.begin(), stops.end())},
                      {"stop_budget_ms", probe_timeout_ms + 100},
                      {"drain_ms", drain_ms},
                      {"resume_p50_ms", percentile(resumes, 0.5)},
                      {"resume_max_ms", *std::max_element(resumes.begin(), resumes.end())},
                      {"first_handled_p50_ms", percentile(firsts, 0.5)},
                      {"first_handled_max_ms", *std::max_element(firsts.begin(), firsts.end())},
                      {"produced", produced.size()},
                      {"lost", lost}});
  return 0;
}
