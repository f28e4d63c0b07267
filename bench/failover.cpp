// Failover of a supervised process (issue 16): a local redis-server (AOF, appendfsync
// always) is killed (-9) and restarted under a process running a scheduler dispatcher and a
// user component under health::app (test/support/failover_process.hpp), while a producer
// schedules a task every 20 ms.
//
//   scripts/bench failover [--rounds 5] [--outage-ms 500] [--probe-timeout-ms 250]
//                          [--reconnect-max-ms 250]
//
// Per round: stop = kill → the last component stopped; resume = Redis answering again (the
// restart returned) → the last component running; first = Redis answering → first task
// handled. Summary line: bench "failover", stop_max_ms, stop_budget_ms (= probe timeout +
// 100 ms), resume_max_ms, lost (tasks whose schedule() completed but that never ran).
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
  po::options_description desc("failover");
  desc.add_options()("rounds", po::value(&rounds))("outage-ms", po::value(&outage_ms))(
      "probe-timeout-ms", po::value(&probe_timeout_ms))("reconnect-max-ms",
                                                        po::value(&reconnect_max_ms));
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
    for (const auto& [name, t] : p.times())
      stop = std::max(stop, ms(t.stopped - killed_at));
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
                      {"resume_p50_ms", percentile(resumes, 0.5)},
                      {"resume_max_ms", *std::max_element(resumes.begin(), resumes.end())},
                      {"first_handled_p50_ms", percentile(firsts, 0.5)},
                      {"first_handled_max_ms", *std::max_element(firsts.begin(), firsts.end())},
                      {"produced", produced.size()},
                      {"lost", lost}});
  return 0;
}
