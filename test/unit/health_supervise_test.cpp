// health::supervise and health::app without servers: dependencies the test switches down
// and up (passive dependencies), components that record their life.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/supervise.hpp>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
using namespace std::chrono_literals;
using health::status;
using steady = std::chrono::steady_clock;

namespace {

// Coroutines started beside the test body, cancelled (terminal) when it ends.
struct background {
  std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
  void spawn(asio::io_context& io, asio::awaitable<void> work) {
    signals.push_back(std::make_unique<asio::cancellation_signal>());
    asio::co_spawn(io, std::move(work),
                   asio::bind_cancellation_slot(signals.back()->slot(), [](std::exception_ptr) {}));
  }
  void stop() {
    for (auto& s : signals)
      s->emit(asio::cancellation_type::terminal);
  }
};

// A component that runs until cancelled and records its starts and stops; with `stubborn`
// it keeps running for that long after being cancelled.
struct life {
  std::string name;
  std::vector<std::string>* journal = nullptr;
  int starts = 0;
  int running = 0;
  int max_running = 0;
  std::chrono::milliseconds stubborn{0};
};

asio::awaitable<void> live(life* l) {
  ++l->starts;
  ++l->running;
  l->max_running = std::max(l->max_running, l->running);
  if (l->journal)
    l->journal->push_back("start " + l->name);
  std::exception_ptr ended_by;
  try {
    co_await corvo::sleep_for(1h);
  } catch (...) {
    ended_by = std::current_exception();
  }
  if (l->stubborn.count() > 0) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await corvo::sleep_for(l->stubborn);
  }
  --l->running;
  if (l->journal)
    l->journal->push_back("stop " + l->name);
  std::rethrow_exception(ended_by);
}

health::component component_of(life& l) {
  return {l.name, [&l] { return live(&l); }};
}

health::supervise_policy fast() {
  health::supervise_policy p;
  p.stop_timeout = 200ms;
  p.restart_backoff = {5ms, 20ms};
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_supervise)

// Down → cancelled, no restart while down, up → restarted once; never two at once.
BOOST_AUTO_TEST_CASE(a_dependency_down_stops_the_component_and_up_restarts_it) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto redis = m.add_passive("redis");
  life l{"worker"};
  health::supervision s(component_of(l), {redis}, fast());
  background bg;
  bg.spawn(io, s.run());
  corvo::test::run(
      io,
      [&]() -> asio::awaitable<void> {
        co_await corvo::sleep_for(20ms);
        BOOST_TEST(l.starts == 0);  // not before the dependency's first success
        BOOST_TEST((s.state() == health::supervision_state::waiting));
        m.record(redis, {status::up, ""});
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return l.running == 1; }, 5s));
        m.record(redis, {status::degraded, "slow"});
        co_await corvo::sleep_for(20ms);
        BOOST_TEST(l.running == 1);  // degraded does not stop it
        const auto down_at = steady::now();
        m.record(redis, {status::down, "killed"});
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return l.running == 0; }, 5s));
        BOOST_TEST_MESSAGE("stopped after " << (steady::now() - down_at) / 1ms << " ms");
        co_await corvo::sleep_for(100ms);
        BOOST_TEST(l.starts == 1);  // no restart while down
        BOOST_TEST((s.state() == health::supervision_state::waiting));
        m.record(redis, {status::up, ""});
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return l.running == 1; }, 5s));
        BOOST_TEST(l.starts == 2);
        BOOST_TEST(l.max_running == 1);
        BOOST_TEST(s.stats().stops == 1u);
        BOOST_TEST(s.stats().stop_overruns == 0u);
        BOOST_TEST(s.stats().failures == 0u);
      }(),
      [&] { bg.stop(); });
}

// A component that ignores cancellation is reported after stop_timeout, and does not hold
// up another component on the same dependency (it stops and restarts on time).
BOOST_AUTO_TEST_CASE(a_component_ignoring_cancellation_is_reported_and_blocks_no_other) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto redis = m.add_passive("redis");
  life stubborn{"stubborn"};
  stubborn.stubborn = 3s;
  life polite{"polite"};
  health::supervision a(component_of(stubborn), {redis}, fast());
  health::supervision b(component_of(polite), {redis}, fast());
  int overruns_reported = 0;
  a.on_stop_overrun([&](const health::supervision& s) {
    BOOST_TEST(s.name() == "stubborn");
    ++overruns_reported;
  });
  background bg;
  bg.spawn(io, a.run());
  bg.spawn(io, b.run());
  corvo::test::run(
      io,
      [&]() -> asio::awaitable<void> {
        m.record(redis, {status::up, ""});
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] { return stubborn.running == 1 && polite.running == 1; }, 5s));
        const auto down_at = steady::now();
        m.record(redis, {status::down, "hung"});
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return polite.running == 0; }, 5s));
        const auto polite_stop = steady::now() - down_at;
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return overruns_reported == 1; }, 5s));
        const auto reported = steady::now() - down_at;
        BOOST_TEST_MESSAGE("polite stopped after "
                           << polite_stop / 1ms << " ms; overrun reported after " << reported / 1ms
                           << " ms");
        BOOST_TEST(reported >= 200ms);      // not before stop_timeout
        BOOST_TEST(stubborn.running == 1);  // still stopping
        BOOST_TEST(a.stats().stop_overruns == 1u);
        BOOST_TEST((a.state() == health::supervision_state::stopping));
        // The dependency is back: the polite component restarts while the stubborn one is
        // still finishing, and the stubborn one is not started twice.
        m.record(redis, {status::up, ""});
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return polite.running == 1; }, 5s));
        BOOST_TEST(stubborn.running == 1);
        BOOST_TEST(stubborn.starts == 1);
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return stubborn.starts == 2; }, 10s));
        BOOST_TEST(stubborn.max_running == 1);
        BOOST_TEST(b.stats().stop_overruns == 0u);
        stubborn.stubborn = 0ms;  // let the test end promptly
      }(),
      [&] { bg.stop(); });
}

// A component that throws on its own is restarted after a delay, and counted.
BOOST_AUTO_TEST_CASE(a_failing_component_is_restarted) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto dep = m.add_passive("db");
  m.record(dep, {status::up, ""});
  int runs = 0;
  health::component flaky{"flaky", [&]() -> asio::awaitable<void> {
                            ++runs;
                            if (runs < 3)
                              throw std::runtime_error("broke");
                            co_return;  // the third run returns: supervision ends
                          }};
  health::supervision s(flaky, {dep}, fast());
  corvo::test::run(io, s.run());
  BOOST_TEST(runs == 3);
  BOOST_TEST(s.stats().failures == 2u);
  BOOST_TEST((s.state() == health::supervision_state::stopped));
}

// The app: components restart in dependency order and drain in reverse order.
BOOST_AUTO_TEST_CASE(the_app_restarts_in_dependency_order_and_drains_in_reverse) {
  health::app_options o;
  o.policy = fast();
  o.stop_signals = {};
  o.shutdown_deadline = 5s;
  health::app app(o);
  std::vector<std::string> journal;
  life store{"store", &journal};
  life consumer{"consumer", &journal};
  life reporter{"reporter", &journal};
  const auto redis = app.monitor().add_passive("redis");
  const auto store_dep = app.add_component(component_of(store), {redis});
  const auto consumer_dep = app.add_component(component_of(consumer), {redis, store_dep});
  app.add_component(component_of(reporter), {consumer_dep});
  BOOST_TEST(store_dep.name() == "component:store");

  bool checks_done = false;
  // Named: the coroutine refers to the closure until it finishes.
  auto driver = [&]() -> asio::awaitable<void> {
    app.monitor().record(redis, {status::up, ""});
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return reporter.running == 1; }, 5s));
    const std::vector<std::string> first{"start store", "start consumer", "start reporter"};
    BOOST_TEST(journal == first, boost::test_tools::per_element());
    journal.clear();
    app.monitor().record(redis, {status::down, "killed"});
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
        [&] { return store.running + consumer.running + reporter.running == 0; }, 5s));
    journal.clear();
    app.monitor().record(redis, {status::up, ""});
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return reporter.running == 1; }, 5s));
    BOOST_TEST(journal == first, boost::test_tools::per_element());
    journal.clear();
    checks_done = true;
    app.request_stop();
  };
  asio::co_spawn(app.get_executor(), driver(), [](std::exception_ptr e) {
    if (e)
      std::rethrow_exception(e);
  });
  const auto result = app.run();
  BOOST_TEST(checks_done);
  BOOST_TEST((result == corvo::run_result::stopped));
  const std::vector<std::string> drained{"stop reporter", "stop consumer", "stop store"};
  BOOST_TEST(journal == drained, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(app_options_come_from_the_health_section) {
  auto cfg = corvo::config::from_string(
      R"({"health":{"probe_interval":"250ms","probe_timeout":"100ms","failures_to_down":2,)"
      R"("successes_to_up":3,"stop_timeout":"2s","restart_initial":"10ms","restart_max":"1s",)"
      R"("shutdown_deadline":"20s"}})");
  const auto o = health::app_options::from(cfg);
  BOOST_TEST(o.probes.interval.count() == 250);
  BOOST_TEST(o.probes.timeout.count() == 100);
  BOOST_TEST(o.probes.failures_to_down == 2u);
  BOOST_TEST(o.probes.successes_to_up == 3u);
  BOOST_TEST(o.policy.stop_timeout.count() == 2000);
  BOOST_TEST(o.policy.restart_backoff.initial.count() == 10);
  BOOST_TEST(o.policy.restart_backoff.max.count() == 1000);
  BOOST_TEST(o.shutdown_deadline.count() == 20000);

  auto typo = corvo::config::from_string(R"({"health":{"probe_timout":"100ms"}})");
  try {
    health::app_options::from(typo);
    BOOST_FAIL("an unknown key was accepted");
  } catch (const corvo::config_error& e) {
    BOOST_TEST(std::string(e.what()).find("probe_timeout") != std::string::npos);
  }
  auto zero = corvo::config::from_string(R"({"health":{"failures_to_down":0}})");
  BOOST_CHECK_THROW(health::app_options::from(zero), corvo::config_error);
}

BOOST_AUTO_TEST_SUITE_END()
