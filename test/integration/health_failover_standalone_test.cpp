// Failover by cancellation on a standalone Redis (issue 16): a process running a scheduler
// dispatcher and a user component under health::app, with a producer scheduling a task
// every 20 ms throughout.
//
// kill -9: both components are cancelled within (probe interval + probe timeout +
// stop_timeout), nothing restarts while Redis is down, the client makes no more connection
// attempts than its backoff schedule allows and the process does not spin; after a restart
// with AOF (appendfsync always) both run again and every task whose schedule() was started
// before, during or after the outage is handled.
// SIGSTOP: the same, detected by the probe timeout (the socket stays open); SIGCONT recovers.
//
// Bounds are generous (twice the budget: the CI machine is slower); the measured times are
// printed. Not covered here yet: the stream consumer, the pub/sub subscriber and the
// reliable-queue consumer (their supervised versions join this test when they exist).
#include <signal.h>

#include <boost/test/unit_test.hpp>
#include <iostream>
#include <thread>

#include "support/failover_process.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using corvo::test::failover_process;

namespace {

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  while (!done()) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

long ms(steady::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// Reconnection attempts a client with full-ceiling delays (initial 50 ms doubling to 2 s:
// the connection's default reconnect_backoff) makes in `outage`: one per backoff step.
std::uint64_t backoff_steps(steady::duration outage) {
  std::uint64_t steps = 0;
  auto ceiling = 50ms;
  steady::duration elapsed{};
  while (elapsed <= outage) {
    elapsed += ceiling;
    ceiling = std::min<std::chrono::milliseconds>(ceiling * 2, 2000ms);
    ++steps;
  }
  return steps;
}

corvo::test::failover_process_options process_options(const corvo::test::redis_server& server) {
  corvo::test::failover_process_options o;
  o.redis_url = server.url();
  return o;
}

// Both components stopped within the budget after `failed_at`, without overrun.
void check_stops(failover_process& p, steady::time_point failed_at,
                 const corvo::test::failover_process_options& o) {
  const auto budget = o.probe_interval + o.probe_timeout + o.stop_timeout;
  for (const auto& [name, t] : p.times()) {
    const auto took = t.stopped - failed_at;
    std::cout << "  " << name << " stopped " << ms(took) << " ms after the failure (budget "
              << budget.count() << " ms, asserted " << 2 * budget.count() << " ms)\n";
    BOOST_TEST((t.stopped > failed_at));
    BOOST_TEST(ms(took) <= 2 * budget.count());
    BOOST_TEST(t.overruns == 0u);
  }
}

void check_recovery(failover_process& p, steady::time_point answers_at,
                    std::uint64_t starts_before) {
  BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
  for (const auto& [name, t] : p.times()) {
    std::cout << "  " << name << " running again " << ms(t.started - answers_at)
              << " ms after Redis answered\n";
    BOOST_TEST(ms(t.started - answers_at) <= 5000);
  }
  std::uint64_t starts = 0;
  for (const auto& [name, t] : p.times())
    starts += t.starts;
  BOOST_TEST(starts == starts_before + 2);  // each restarted exactly once
  BOOST_TEST_REQUIRE(
      wait_until([&] { return p.first_handled_after(answers_at) != steady::time_point{}; }, 20s));
  std::cout << "  first task handled " << ms(p.first_handled_after(answers_at) - answers_at)
            << " ms after Redis answered\n";
}

void check_nothing_lost(failover_process& p, std::uint64_t started_at_failure,
                        std::uint64_t started_at_recovery) {
  p.stop_producing();
  BOOST_TEST_REQUIRE(wait_until([&] { return p.everything_handled(); }, 60s));
  const auto produced = p.produced();
  const auto handled = p.handled();
  std::cout << "  schedule() calls started: " << p.started() << " (" << started_at_failure
            << " before the failure, " << started_at_recovery - started_at_failure
            << " during the outage); produced " << produced.size() << ", handled " << handled.size()
            << "\n";
  BOOST_TEST(started_at_recovery > started_at_failure);  // tasks were produced during it
  BOOST_TEST(produced.size() == p.started());            // every call completed
  for (std::uint64_t i = 0; i < p.started(); ++i) {
    const auto id = "task-" + std::to_string(i);
    BOOST_TEST(produced.contains(id), id << " produced");
    BOOST_TEST(handled.contains(id), id << " handled");
  }
}

std::uint64_t total_starts(failover_process& p) {
  std::uint64_t n = 0;
  for (const auto& [name, t] : p.times())
    n += t.starts;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_failover_standalone)

BOOST_AUTO_TEST_CASE(redis_killed_and_restarted_with_aof) {
  corvo::test::redis_server_options so;
  so.append_only = true;
  so.extra_config = {"appendfsync always"};
  corvo::test::redis_server server(so);
  const auto o = process_options(server);
  failover_process p(o);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
  BOOST_TEST_REQUIRE(wait_until([&] { return p.handled().size() >= 20; }, 20s));
  const auto starts_before = total_starts(p);
  const auto attempts_before = p.connection_attempts();

  const auto killed_at = steady::now();
  const auto started_at_kill = p.started();
  server.kill();
  std::cout << "kill -9:\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return p.none_running(); }, 20s));
  check_stops(p, killed_at, o);

  // Two seconds of outage with everything stopped: nothing restarts, nothing spins.
  const auto cpu_before = corvo::test::process_cpu_time();
  const auto quiet_from = steady::now();
  std::this_thread::sleep_for(2s);
  const auto cpu = corvo::test::process_cpu_time() - cpu_before;
  const auto wall = steady::now() - quiet_from;
  BOOST_TEST(p.none_running());
  const double cpu_share = std::chrono::duration<double>(cpu) / std::chrono::duration<double>(wall);
  std::cout << "  CPU while down: " << cpu.count() / 1000 << " ms in " << ms(wall) << " ms ("
            << cpu_share * 100 << " %)\n";
  BOOST_TEST(cpu_share < 0.25);

  const auto started_at_restart = p.started();
  const auto attempts = p.connection_attempts() - attempts_before;
  const auto outage = steady::now() - killed_at;
  std::cout << "  connection attempts while down: " << attempts << " in " << ms(outage)
            << " ms (backoff steps in that time: " << backoff_steps(outage) << ")\n";
  BOOST_TEST(attempts <= 2 * backoff_steps(outage) + 4);

  server.restart();
  const auto answers_at = steady::now();
  check_recovery(p, answers_at, starts_before);
  check_nothing_lost(p, started_at_kill, started_at_restart);
}

BOOST_AUTO_TEST_CASE(redis_hung_by_sigstop_and_resumed) {
  corvo::test::redis_server server;
  const auto o = process_options(server);
  failover_process p(o);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
  BOOST_TEST_REQUIRE(wait_until([&] { return p.handled().size() >= 20; }, 20s));
  const auto starts_before = total_starts(p);
  const auto attempts_before = p.connection_attempts();

  const auto stopped_at = steady::now();
  const auto started_at_stop = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  std::cout << "SIGSTOP:\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return p.none_running(); }, 20s));
  check_stops(p, stopped_at, o);

  const auto cpu_before = corvo::test::process_cpu_time();
  const auto quiet_from = steady::now();
  std::this_thread::sleep_for(1500ms);
  const auto cpu = corvo::test::process_cpu_time() - cpu_before;
  const auto wall = steady::now() - quiet_from;
  BOOST_TEST(p.none_running());
  const double cpu_share = std::chrono::duration<double>(cpu) / std::chrono::duration<double>(wall);
  std::cout << "  CPU while hung: " << cpu.count() / 1000 << " ms in " << ms(wall) << " ms ("
            << cpu_share * 100 << " %)\n";
  BOOST_TEST(cpu_share < 0.25);
  // The socket stays open: no reconnection while hung (request_timeout is 5 s).
  BOOST_TEST(p.connection_attempts() == attempts_before);

  const auto started_at_cont = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  const auto answers_at = steady::now();
  check_recovery(p, answers_at, starts_before);
  check_nothing_lost(p, started_at_stop, started_at_cont);
}

BOOST_AUTO_TEST_SUITE_END()
