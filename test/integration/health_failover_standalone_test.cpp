// Failover by cancellation on a standalone Redis (issue 16): one process running, under
// health::app, a scheduler dispatcher, a stream consumer (also on the stream_readable_probe),
// a pub/sub subscriber, a reliable-queue consumer and a user component, with a producer
// scheduling a task, appending a stream entry and pushing a queue item every 20 ms
// throughout (support/failover_process.hpp).
//
// kill -9: every component is cancelled and stopped within (probe interval + probe timeout
// + stop_timeout), without a stop overrun, with the components' default drain_timeout (10 s:
// a stop does not wait for acknowledgements that cannot reach a dead server); nothing restarts
// while Redis is down; the whole process makes at most one connection attempt to Redis per step of
// the reconnection backoff (every connect() of the process is counted here, by interposing
// connect(); the clients' delays are set without jitter so the steps are exact) and does not spin;
// after a restart with AOF (appendfsync always) each component runs again exactly once more, every
// task, entry and item whose production was started before, during or after the outage is handled,
// and the subscription is back (PUBSUB NUMSUB 1, messages published after the recovery arrive).
// SIGSTOP, with work in flight and the default drain_timeout and request_timeout: the same,
// detected by the probe timeout; the stops do not wait for the hung server (the monitor has
// the clients drop their connections: health::reset_when_down), and the clients reconnect at
// most once per backoff step while it is hung; SIGCONT recovers.
// Stream unreadable while Redis is up (its key set aside and replaced by a string): the
// stream_readable_probe goes down and only the stream consumer (the one component on it) is
// stopped, exactly once, within the budget; the other four keep running and handling work
// and the consumer stays stopped while the stream is unreadable; once the stream is back the
// consumer runs again (exactly one more start) and every entry is handled.
//
// Bounds are generous (twice the budget: the CI machine is slower) and scale with the
// probe timeout; the measured times are printed.
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "support/failover_process.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using corvo::test::failover_process;

// Every connect() of this process to the watched port is counted, then passed on.
namespace {
std::atomic<int> watched_port{0};
std::atomic<std::uint64_t> connects_to_watched{0};
}  // namespace

extern "C" int connect(int fd, const sockaddr* addr, socklen_t len) {
  using connect_fn = int (*)(int, const sockaddr*, socklen_t);
  static const auto next = reinterpret_cast<connect_fn>(::dlsym(RTLD_NEXT, "connect"));
  const int port = watched_port.load();
  if (port != 0 && addr != nullptr) {
    int to = 0;
    if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
      to = ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
      to = ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    }
    if (to == port) {
      ++connects_to_watched;
    }
  }
  return next(fd, addr, len);
}

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

// Connection attempts one client with the connection's default delays without jitter (50
// ms doubling up to 2 s) makes in `outage`: the first at once, then one per backoff step.
std::uint64_t backoff_steps(steady::duration outage) {
  std::uint64_t steps = 0;
  auto delay = 50ms;
  steady::duration elapsed{};
  while (elapsed <= outage) {
    ++steps;
    elapsed += delay;
    delay = std::min<std::chrono::milliseconds>(delay * 2, 2000ms);
  }
  return steps;
}

corvo::test::failover_process_options process_options(const corvo::test::redis_server& server) {
  corvo::test::failover_process_options o;
  o.redis_url = server.url();
  o.reconnect_jitter = false;
  return o;
}

const std::vector<std::string> components{"heartbeat", "queue", "scheduler", "stream",
                                          "subscriber"};

// Every component stopped within the budget after `failed_at`, without overrun since
// `before` (the times before the failure).
void check_stops(failover_process& p, steady::time_point failed_at,
                 const corvo::test::failover_process_options& o,
                 const std::map<std::string, corvo::test::component_times>& before) {
  const auto budget = o.probe_interval + o.probe_timeout + o.stop_timeout;
  const auto times = p.times();
  BOOST_TEST_REQUIRE(times.size() == components.size());
  for (const auto& [name, t] : times) {
    const auto took = t.stopped - failed_at;
    std::cout << "  " << name << " stopped " << ms(took) << " ms after the failure (budget "
              << budget.count() << " ms, asserted " << 2 * budget.count() << " ms)\n";
    BOOST_TEST((t.stopped > failed_at), name);
    BOOST_TEST(ms(took) <= 2 * budget.count(), name);
    BOOST_TEST(t.overruns == before.at(name).overruns, name);
  }
}

bool same_life(const corvo::test::component_times& a, const corvo::test::component_times& b) {
  return a.starts == b.starts && a.stops == b.stops;
}

// Messages published while the subscriber stays subscribed reach it: `n` published, each
// counted by the server for one receiver, and each received. Pub/sub is at most once: what
// is published while the subscriber restarts is lost by design, and under load a probe
// answered after its timeout can take `redis` down for a moment and restart it. So a round
// during which the subscriber restarted is published again (up to 5 rounds); the round
// that counts is one with the same subscriber from before its first publish to the end.
void check_messages_arrive(failover_process& p, int n) {
  for (int round = 1;; ++round) {
    BOOST_TEST_REQUIRE(wait_until(
        [&] { return p.times().at("subscriber").running && p.subscribers() == 1; }, 20s));
    const auto before = p.times().at("subscriber");
    const auto sent = p.publish(n);
    const auto all_received = [&] {
      const auto got = p.received();
      for (const auto& [payload, receivers] : sent) {
        if (!got.contains(payload))
          return false;
      }
      return true;
    };
    // Until every message arrived, or the subscriber restarted (then some never will).
    wait_until([&] { return all_received() || !same_life(p.times().at("subscriber"), before); },
               20s);
    const bool restarted = !same_life(p.times().at("subscriber"), before);
    if (restarted && round < 5) {
      std::cout << "  the subscriber restarted during publishing round " << round
                << " (a dependency flap under load): publishing again\n";
      continue;
    }
    BOOST_TEST(!restarted);
    for (const auto& [payload, receivers] : sent) {
      BOOST_TEST(receivers == 1, payload);
    }
    BOOST_TEST(all_received());
    return;
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
  BOOST_TEST(starts == starts_before + components.size());  // each restarted exactly once
  BOOST_TEST_REQUIRE(
      wait_until([&] { return p.first_handled_after(answers_at) != steady::time_point{}; }, 20s));
  std::cout << "  first task handled " << ms(p.first_handled_after(answers_at) - answers_at)
            << " ms after Redis answered\n";
  // The subscription is back: the server counts one subscriber, and messages arrive.
  BOOST_TEST_REQUIRE(wait_until([&] { return p.subscribers() == 1; }, 20s));
  std::cout << "  subscription restored " << ms(steady::now() - answers_at)
            << " ms after Redis answered (PUBSUB NUMSUB 1)\n";
  check_messages_arrive(p, 5);
}

void check_nothing_lost(failover_process& p, std::uint64_t started_at_failure,
                        std::uint64_t started_at_recovery) {
  p.stop_producing();
  BOOST_TEST_REQUIRE(wait_until([&] { return p.everything_handled(); }, 60s));
  BOOST_TEST(started_at_recovery > started_at_failure);  // work was produced during it
  std::cout << "  production rounds started: " << p.started() << " (" << started_at_failure
            << " before the failure, " << started_at_recovery - started_at_failure
            << " during the outage)\n";
  for (const std::string kind : {"task", "entry", "item"}) {
    const auto produced = p.produced(kind);
    const auto handled = p.handled(kind);
    std::cout << "  " << kind << ": produced " << produced.size() << ", handled " << handled.size()
              << "\n";
    BOOST_TEST(produced.size() == p.started(), kind);  // every production completed
    for (std::uint64_t i = 0; i < p.started(); ++i) {
      const auto id = kind + "-" + std::to_string(i);
      BOOST_TEST(produced.contains(id), id << " produced");
      BOOST_TEST(handled.contains(id), id << " handled");
    }
  }
}

std::uint64_t total_starts(failover_process& p) {
  std::uint64_t n = 0;
  for (const auto& [name, t] : p.times())
    n += t.starts;
  return n;
}

// All five running, each kind of work handled, the subscriber receiving.
// Every component runs, handles work and has stayed running for 3 probes of `redis` in a
// row. (Under load the first probes of a fresh process can answer late and restart
// components once: the counts a case asserts start after that.)
void wait_for_steady_state(failover_process& p) {
  BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
  for (const std::string kind : {"task", "entry", "item"}) {
    BOOST_TEST_REQUIRE(wait_until([&] { return p.handled(kind).size() >= 10; }, 20s), kind);
  }
  const auto unchanged = [](const std::map<std::string, corvo::test::component_times>& a,
                            const std::map<std::string, corvo::test::component_times>& b) {
    for (const auto& [name, t] : a) {
      if (!t.running || !b.at(name).running || !same_life(t, b.at(name)))
        return false;
    }
    return true;
  };
  bool steady = false;
  for (int window = 0; window < 10 && !steady; ++window) {
    BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
    const auto before = p.times();
    const auto probes = p.dependency("redis").stats.probes;
    BOOST_TEST_REQUIRE(
        wait_until([&] { return p.dependency("redis").stats.probes >= probes + 3; }, 20s));
    steady = unchanged(before, p.times());
  }
  BOOST_TEST_REQUIRE(steady);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.subscribers() == 1; }, 20s));
  check_messages_arrive(p, 5);
}

// CPU use of the process over `quiet` while everything is stopped: no busy loop.
void check_quiet(failover_process& p, std::chrono::milliseconds quiet) {
  const auto cpu_before = corvo::test::process_cpu_time();
  const auto quiet_from = steady::now();
  std::this_thread::sleep_for(quiet);
  const auto cpu = corvo::test::process_cpu_time() - cpu_before;
  const auto wall = steady::now() - quiet_from;
  BOOST_TEST(p.none_running());
  const double cpu_share = std::chrono::duration<double>(cpu) / std::chrono::duration<double>(wall);
  std::cout << "  CPU while down: " << cpu.count() / 1000 << " ms in " << ms(wall) << " ms ("
            << cpu_share * 100 << " %)\n";
  BOOST_TEST(cpu_share < 0.25);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_failover_standalone)

BOOST_AUTO_TEST_CASE(redis_killed_and_restarted_with_aof) {
  corvo::test::redis_server_options so;
  so.append_only = true;
  so.extra_config = {"appendfsync always"};
  corvo::test::redis_server server(so);
  auto o = process_options(server);
  // The libraries' default drain_timeout (10 s) for the scheduler, the stream consumer and
  // the queue consumer: the stop bound must not depend on it (their last acks cannot reach
  // a killed server, and they do not wait for it).
  o.drain_timeout = 10s;
  failover_process p(o);
  wait_for_steady_state(p);
  const auto starts_before = total_starts(p);
  const auto times_before = p.times();
  // Two tasks, an entry and an item in flight at the kill, finishing after it (one of the
  // tasks failing): their acks and the task's failure report cannot reach Redis, and the
  // stops must not wait for them.
  p.hold_handlers(true);
  for (const std::string kind : {"task", "entry", "item"}) {
    const std::uint64_t needed = kind == "task" ? 2 : 1;
    BOOST_TEST_REQUIRE(wait_until([&] { return p.held(kind) >= needed; }, 20s), kind);
  }

  watched_port = server.port();
  const auto killed_at = steady::now();
  connects_to_watched = 0;
  const auto started_at_kill = p.started();
  server.kill();
  std::cout << "kill -9:\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return p.none_running(); }, 20s));
  check_stops(p, killed_at, o, times_before);
  p.hold_handlers(false);

  // Two seconds of outage with everything stopped: nothing restarts, nothing spins, and
  // only the command client (a service, not a component) reconnects: at most one attempt
  // per step of its backoff (the stopped components' clients are closed).
  const auto all_stopped = steady::now();
  const auto attempts_while_stopping = connects_to_watched.exchange(0);
  check_quiet(p, 2s);
  const auto started_at_restart = p.started();
  const auto attempts = connects_to_watched.load();
  const auto outage = steady::now() - killed_at;
  // Steps of the command client's schedule (counted from the kill) that fall in the quiet
  // window, plus one for an attempt at its edge.
  const auto steps = backoff_steps(outage) - backoff_steps(all_stopped - killed_at) + 1;
  std::cout << "  connection attempts of the process: " << attempts_while_stopping
            << " while the components stopped (" << ms(all_stopped - killed_at) << " ms), "
            << attempts << " in the next " << ms(steady::now() - all_stopped)
            << " ms with everything stopped (backoff steps of one client in that window: " << steps
            << ")\n";
  BOOST_TEST(attempts <= steps);
  BOOST_TEST(attempts + attempts_while_stopping >= 1u);  // the counter sees the reconnections

  server.restart();
  const auto answers_at = steady::now();
  check_recovery(p, answers_at, starts_before);
  check_nothing_lost(p, started_at_kill, started_at_restart);
  watched_port = 0;
}

BOOST_AUTO_TEST_CASE(redis_hung_by_sigstop_and_resumed) {
  corvo::test::redis_server server;
  auto o = process_options(server);
  // The default drain_timeout (10 s) and reply deadline (request_timeout 5 s), with work in
  // flight at the SIGSTOP: the acks and the failure report go to a server that keeps its
  // socket open and never answers. The stops must not wait for them: when the monitor
  // declares Redis down, the clients drop their connections (health::reset_when_down) and
  // the requests written to the hung server fail at once.
  o.drain_timeout = 10s;
  failover_process p(o);
  wait_for_steady_state(p);
  const auto starts_before = total_starts(p);
  const auto times_before = p.times();
  p.hold_handlers(true);
  for (const std::string kind : {"task", "entry", "item"}) {
    const std::uint64_t needed = kind == "task" ? 2 : 1;
    BOOST_TEST_REQUIRE(wait_until([&] { return p.held(kind) >= needed; }, 20s), kind);
  }

  watched_port = server.port();
  connects_to_watched = 0;
  const auto stopped_at = steady::now();
  const auto started_at_stop = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  std::cout << "SIGSTOP with work in flight, drain_timeout 10 s, request_timeout 5 s:\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return p.none_running(); }, 30s));
  check_stops(p, stopped_at, o, times_before);
  p.hold_handlers(false);

  // While hung: nothing restarts, nothing spins, and the command client (reset when Redis
  // went down) reconnects at most once per step of its backoff: the kernel accepts the
  // connection, the handshake is never answered (connect_timeout), so it stays not connected.
  const auto all_stopped = steady::now();
  const auto attempts_while_stopping = connects_to_watched.exchange(0);
  check_quiet(p, 1500ms);
  const auto attempts = connects_to_watched.load();
  const auto steps =
      backoff_steps(steady::now() - stopped_at) - backoff_steps(all_stopped - stopped_at) + 1;
  std::cout << "  connection attempts of the process while hung: " << attempts_while_stopping
            << " while the components stopped (" << ms(all_stopped - stopped_at) << " ms), "
            << attempts << " in the next " << ms(steady::now() - all_stopped)
            << " ms with everything stopped (backoff steps of one client: " << steps << ")\n";
  BOOST_TEST(attempts <= steps);

  const auto started_at_cont = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  const auto answers_at = steady::now();
  check_recovery(p, answers_at, starts_before);
  check_nothing_lost(p, started_at_stop, started_at_cont);
  watched_port = 0;
}

// A hung Redis with work in flight and the default drain_timeout (10 s): acks written to
// the hung server are not answered, and a stop would wait them out up to drain_timeout. With
// the clients' reply deadline (request_timeout) below stop_timeout, they fail by it, the
// connection is re-established (its handshake with the hung server does not complete: not
// connected) and each stopping component gives its last acks up: every stop ends within the
// budget, without overrun, and nothing is lost after SIGCONT.
BOOST_AUTO_TEST_CASE(redis_hung_with_work_in_flight_and_a_request_timeout) {
  corvo::test::redis_server server;
  auto o = process_options(server);
  o.drain_timeout = 10s;
  o.request_timeout = 400ms;
  o.reset_when_down = false;  // the reply deadline alone, as without a health monitor
  failover_process p(o);
  wait_for_steady_state(p);
  const auto times_before = p.times();
  p.hold_handlers(true);
  for (const std::string kind : {"task", "entry", "item"}) {
    const std::uint64_t needed = kind == "task" ? 2 : 1;
    BOOST_TEST_REQUIRE(wait_until([&] { return p.held(kind) >= needed; }, 20s), kind);
  }
  const auto stopped_at = steady::now();
  const auto started_at_stop = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  std::cout << "SIGSTOP with work in flight, drain_timeout 10 s, request_timeout 400 ms:\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return p.none_running(); }, 30s));
  check_stops(p, stopped_at, o, times_before);
  p.hold_handlers(false);
  const auto started_at_cont = p.started();
  BOOST_TEST_REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.all_running(); }, 20s));
  check_nothing_lost(p, started_at_stop, started_at_cont);
}

// Atomically (one script): the stream is set aside and its key holds a string, so XINFO
// STREAM fails with WRONGTYPE. (A deleted stream would not stay missing: the producer's next
// append recreates it within 20 ms.)
constexpr const char* make_unreadable =
    "redis.call('RENAME', KEYS[1], KEYS[2]) redis.call('SET', KEYS[1], 'not a stream') return 1";
constexpr const char* make_readable =
    "redis.call('DEL', KEYS[1]) redis.call('RENAME', KEYS[2], KEYS[1]) return 1";

BOOST_AUTO_TEST_CASE(stream_unreadable_while_redis_is_up) {
  corvo::test::redis_server server;
  const auto o = process_options(server);
  failover_process p(o);
  wait_for_steady_state(p);
  const auto before = p.times();
  const auto aside = p.stream() + ":aside";

  const auto failed_at = steady::now();
  const auto started_at_failure = p.started();
  BOOST_TEST_REQUIRE(server.cli("EVAL", make_unreadable, "2", p.stream(), aside) == "1");
  std::cout << "stream key replaced by a string (Redis up):\n";
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.times().at("stream").running; }, 20s));
  const auto stopped = p.times().at("stream").stopped;
  const auto budget = o.probe_interval + o.probe_timeout + o.stop_timeout;
  std::cout << "  stream stopped " << ms(stopped - failed_at) << " ms after the failure (budget "
            << budget.count() << " ms, asserted " << 2 * budget.count() << " ms)\n";
  BOOST_TEST((stopped > failed_at));
  BOOST_TEST(ms(stopped - failed_at) <= 2 * budget.count());
  // The probe names the stream and the server's answer; Redis itself is up.
  const auto stream_dep = p.dependency("stream");
  std::cout << "  stream dependency: " << stream_dep.detail << "\n";
  BOOST_TEST((stream_dep.state == corvo::health::status::down));
  BOOST_TEST(stream_dep.detail.find("XINFO STREAM " + p.stream()) != std::string::npos,
             stream_dep.detail);
  BOOST_TEST(stream_dep.detail.find("WRONGTYPE") != std::string::npos, stream_dep.detail);
  BOOST_TEST((p.dependency("redis").state == corvo::health::status::up));

  // While unreadable (five more probes): the consumer stays stopped, and the others keep
  // running and handling work.
  const auto probes = stream_dep.stats.probes;
  const auto tasks = p.handled("task").size();
  const auto items = p.handled("item").size();
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        return p.dependency("stream").stats.probes >= probes + 5 &&
               p.handled("task").size() >= tasks + 5 && p.handled("item").size() >= items + 5;
      },
      20s));
  auto during = p.times();
  BOOST_TEST(!during.at("stream").running);
  BOOST_TEST(during.at("stream").starts == before.at("stream").starts);
  BOOST_TEST(during.at("stream").stops == before.at("stream").stops + 1);
  for (const auto& [name, t] : during) {
    if (name != "stream") {
      BOOST_TEST(t.running, name);
      BOOST_TEST(t.starts == before.at(name).starts, name);
      BOOST_TEST(t.stops == before.at(name).stops, name);
    }
  }

  const auto started_at_recovery = p.started();
  BOOST_TEST_REQUIRE(server.cli("EVAL", make_readable, "2", p.stream(), aside) == "1");
  const auto readable_at = steady::now();
  BOOST_TEST_REQUIRE(wait_until([&] { return p.times().at("stream").running; }, 20s));
  std::cout << "  stream running again " << ms(p.times().at("stream").started - readable_at)
            << " ms after the stream was readable\n";
  BOOST_TEST(ms(p.times().at("stream").started - readable_at) <= 5000);
  check_nothing_lost(p, started_at_failure, started_at_recovery);
  // Exactly one stop and one restart of the stream consumer; nothing else stopped.
  for (const auto& [name, t] : p.times()) {
    const unsigned more = name == "stream" ? 1 : 0;
    BOOST_TEST(t.running, name);
    BOOST_TEST(t.starts == before.at(name).starts + more, name);
    BOOST_TEST(t.stops == before.at(name).stops + more, name);
    BOOST_TEST(t.overruns == before.at(name).overruns, name);
  }
}

BOOST_AUTO_TEST_SUITE_END()
