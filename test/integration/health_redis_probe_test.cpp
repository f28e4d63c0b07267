// The Redis probes at a process's start (src/health/redis_probes.cpp): the first probe runs
// while the client's first connect is still under way, and must wait for it (bounded by the
// probe timeout) instead of failing at once, which would keep the dependency down, and the
// components depending on it waiting, for a whole probe interval. Once the client has
// answered, a probe of a client that is not connected fails at once.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/redis/client.hpp>
#include <functional>
#include <stdexcept>
#include <string>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
namespace redis = corvo::redis;
using namespace std::chrono_literals;

namespace {

// The interval is far longer than the test: only the first probe (and probes a reported
// failure asks for) can run within it.
health::probe_options first_probe_only() {
  health::probe_options o;
  o.interval = 60s;
  o.timeout = 10s;  // generous: a loaded machine still connects within it
  return o;
}

// Cancels what a test started beside it and waits for it (its ending is not under test).
asio::awaitable<void> stop(corvo::task_group& background) {
  background.cancel();
  try {
    co_await background.join();
  } catch (const std::exception&) {
  }
}

// Starts the client and the monitor together and waits until `dep` has a first result.
asio::awaitable<health::dependency_report> first_result(redis::client& client,
                                                        health::monitor& monitor,
                                                        health::dependency dep) {
  const auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(client.run());
  co_await background.spawn(monitor.run());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (monitor.report(dep).stats.probes == 0 && std::chrono::steady_clock::now() < deadline) {
    co_await corvo::sleep_for(1ms);
  }
  auto report = monitor.report(dep);
  co_await stop(background);
  co_return report;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_redis_probe)

// The first probe of `probe` (made for a client of `server`) runs while the client connects
// for the first time: it must be a success, the only result, and the state up.
void check_first_probe_is_up(corvo::test::redis_server& server,
                             const std::function<health::probe_fn(redis::client&)>& make_probe) {
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  health::monitor monitor(ctx.get_executor());
  const auto dep = monitor.add("dependency", make_probe(client), first_probe_only());
  const auto report = corvo::test::run(ctx, first_result(client, monitor, dep));
  BOOST_TEST(report.stats.probes == 1U);
  BOOST_TEST(report.stats.failures == 0U, report.detail);
  BOOST_TEST((report.state == health::status::up));
}

BOOST_AUTO_TEST_CASE(the_first_ping_probe_waits_for_the_first_connect) {
  corvo::test::redis_server server;
  check_first_probe_is_up(server, [](redis::client& c) { return health::redis_ping_probe(c); });
}

BOOST_AUTO_TEST_CASE(the_first_stream_probe_waits_for_the_first_connect) {
  corvo::test::redis_server server;
  server.cli("XADD", "events", "*", "k", "v");
  check_first_probe_is_up(
      server, [](redis::client& c) { return health::stream_readable_probe(c, {"events"}); });
}

// Kills the server once the first probe answered, waits until the client has seen the loss,
// reports a failure and waits for the probe the report asks for; returns how long that took.
asio::awaitable<std::chrono::steady_clock::duration> probe_after_a_loss(
    redis::client& client, health::monitor& monitor, health::dependency dep,
    corvo::test::redis_server& server) {
  const auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(client.run());
  co_await background.spawn(monitor.run());
  while (monitor.report(dep).stats.probes == 0) {
    co_await corvo::sleep_for(1ms);
  }
  BOOST_TEST((monitor.report(dep).state == health::status::up));
  server.kill();
  for (bool connected = true; connected;) {  // until a PING that must not wait fails
    redis::request::config cfg;
    cfg.fail_if_not_connected = true;
    redis::request req(cfg);
    req.push("PING");
    redis::response<std::string> resp;
    try {
      co_await client.exec(req, resp);
      connected = std::get<0>(resp).has_value();
    } catch (const boost::system::system_error&) {
      connected = false;
    }
    if (connected) {
      co_await corvo::sleep_for(1ms);
    }
  }
  const auto reported = std::chrono::steady_clock::now();
  monitor.report_failure(dep, "test: connection lost");
  while (monitor.report(dep).stats.probes < 3) {  // the report, then the probe it asks for
    co_await corvo::sleep_for(1ms);
  }
  const auto took = std::chrono::steady_clock::now() - reported;
  co_await stop(background);
  co_return took;
}

// After the first answer the probe fails fast: with the server gone and the client
// reconnecting, the probe a reported failure asks for fails far sooner than its timeout.
BOOST_AUTO_TEST_CASE(once_answered_a_probe_of_a_disconnected_client_fails_at_once) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  health::monitor monitor(ctx.get_executor());
  const auto dep = monitor.add("redis", health::redis_ping_probe(client), first_probe_only());
  const auto took = corvo::test::run(ctx, probe_after_a_loss(client, monitor, dep, server));
  const auto report = monitor.report(dep);
  BOOST_TEST((report.state == health::status::down));
  BOOST_TEST(report.stats.probes == 3U);
  BOOST_TEST(report.stats.failures == 2U);
  // Far below the probe's 10 s timeout: the probe did not wait for a connection.
  BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() < 5000);
}

BOOST_AUTO_TEST_SUITE_END()

// A handle of no monitor has no transitions to follow: refused, as every health call that
// takes one.
BOOST_AUTO_TEST_CASE(reset_when_down_refuses_a_dependency_of_no_monitor) {
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url("redis://127.0.0.1:1"));
  BOOST_CHECK_EXCEPTION(health::reset_when_down(health::dependency{}, client),
                        std::invalid_argument, [](const std::invalid_argument& e) {
                          return std::string(e.what()) ==
                                 "health::reset_when_down: a dependency of no monitor";
                        });
}
