#include <corvo/core/supervisor.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/test/unit_test.hpp>

#include "support/run_coroutine.hpp"

#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// A dependency the test switches up and down, and a component that records its life.
struct world {
  bool healthy = true;
  std::vector<std::string> events;
  int running = 0;
  int max_running = 0;
  int starts = 0;
  int failures_to_inject = 0;  // the next N starts throw after a short while
  std::chrono::milliseconds ignore_cancel_for{0};
};

asio::awaitable<bool> probe(world& w) {
  w.events.push_back(w.healthy ? "probe:up" : "probe:down");
  co_return w.healthy;
}

asio::awaitable<void> component(world& w) {
  ++w.starts;
  ++w.running;
  w.max_running = std::max(w.max_running, w.running);
  w.events.push_back("start");
  std::exception_ptr ended_by;
  try {
    if (w.failures_to_inject > 0) {
      --w.failures_to_inject;
      co_await corvo::sleep_for(1ms);
      throw std::runtime_error("component broke");
    }
    co_await corvo::sleep_for(1h);
  } catch (...) {
    ended_by = std::current_exception();
  }
  if (w.ignore_cancel_for.count() > 0) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await corvo::sleep_for(w.ignore_cancel_for);
  }
  --w.running;
  w.events.push_back("stop");
  std::rethrow_exception(ended_by);
}

corvo::supervisor_options fast_options() {
  corvo::supervisor_options o;
  o.name = "test-component";
  o.probe_interval = 2ms;
  o.probe_timeout = 1s;
  o.restart_backoff = {1ms, 4ms};
  o.stop_timeout = 1s;
  return o;
}

asio::awaitable<void> wait_until(std::function<bool()> condition) {
  for (int i = 0; i < 20'000 && !condition(); ++i) {
    co_await corvo::sleep_for(1ms);
  }
  BOOST_REQUIRE(condition());
}

// Brings the dependency down and up again, then stops the supervisor.
asio::awaitable<void> outage_script(world& w, corvo::supervisor& s,
                                    asio::cancellation_signal& stop) {
  co_await wait_until([&] { return w.starts == 1; });
  w.healthy = false;
  co_await wait_until([&] { return s.stats().stops == 1 && s.stats().probe_failures >= 4; });
  BOOST_TEST(w.starts == 1);  // no restart while the probe fails
  w.healthy = true;
  co_await wait_until([&] { return w.starts == 2; });
  stop.emit(asio::cancellation_type::terminal);
}

asio::awaitable<void> run_supervisor(corvo::supervisor& s) { co_await s.run(); }

asio::awaitable<void> run_both(world& w, corvo::supervisor& s, asio::cancellation_signal& stop,
                               std::exception_ptr& supervisor_ended) {
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, run_supervisor(s),
                 asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                   supervisor_ended = e ? e : std::make_exception_ptr(std::logic_error("none"));
                 }));
  co_await outage_script(w, s, stop);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(supervisor_suite)

BOOST_AUTO_TEST_CASE(restarts_exactly_after_the_probe_recovers) {
  asio::io_context ctx;
  world w;
  corvo::supervisor s([&] { return component(w); }, [&] { return probe(w); }, fast_options());
  std::vector<std::pair<corvo::supervisor_state, corvo::supervisor_state>> transitions;
  s.on_transition([&](auto from, auto to) { transitions.emplace_back(from, to); });
  asio::cancellation_signal stop;
  std::exception_ptr ended;
  corvo::test::run(ctx, run_both(w, s, stop, ended));
  ctx.restart();
  ctx.run();

  // Every start directly follows a successful probe, and after the outage began no start
  // happened before the first probe that said "up" again.
  for (std::size_t i = 0; i < w.events.size(); ++i) {
    if (w.events[i] == "start") {
      BOOST_REQUIRE(i > 0);
      BOOST_TEST(w.events[i - 1] == "probe:up");
    }
  }
  const auto first_down = std::find(w.events.begin(), w.events.end(), "probe:down");
  BOOST_REQUIRE(first_down != w.events.end());
  BOOST_TEST(*(first_down + 1) == "stop");
  const auto recovered = std::find(first_down, w.events.end(), "probe:up");
  BOOST_REQUIRE(recovered != w.events.end());
  BOOST_TEST(*(recovered + 1) == "start");
  BOOST_TEST(std::count(first_down, recovered, std::string("start")) == 0);
  BOOST_TEST(std::count(first_down, recovered, std::string("probe:down")) >= 4);

  // Cancelling the supervisor stops the component and ends run() with operation_aborted.
  BOOST_REQUIRE(ended);
  BOOST_CHECK_EXCEPTION(std::rethrow_exception(ended), boost::system::system_error,
                        [](const auto& e) { return e.code() == asio::error::operation_aborted; });
  BOOST_TEST(w.running == 0);
  BOOST_TEST(w.events.back() == "stop");
  BOOST_TEST(to_string(s.state()) == "stopped");
  BOOST_TEST(s.stats().starts == 2u);
  BOOST_TEST(s.stats().stops == 2u);  // the outage and the final cancellation
  BOOST_TEST(w.max_running == 1);
  BOOST_TEST(to_string(transitions.front().second) == "probing");
  BOOST_TEST(to_string(transitions.back().second) == "stopped");
}

asio::awaitable<void> failing_component_script(world& w, corvo::supervisor& s,
                                               asio::cancellation_signal& stop) {
  co_await wait_until([&] { return w.starts == 3; });
  BOOST_TEST(s.stats().component_failures == 2u);
  stop.emit(asio::cancellation_type::terminal);
}

asio::awaitable<void> run_failing(world& w, corvo::supervisor& s, asio::cancellation_signal& stop) {
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, run_supervisor(s), asio::bind_cancellation_slot(stop.slot(), asio::detached));
  co_await failing_component_script(w, s, stop);
}

BOOST_AUTO_TEST_CASE(failed_component_is_restarted_after_backoff) {
  asio::io_context ctx;
  world w;
  w.failures_to_inject = 2;
  corvo::supervisor s([&] { return component(w); }, [&] { return probe(w); }, fast_options());
  asio::cancellation_signal stop;
  corvo::test::run(ctx, run_failing(w, s, stop));
  ctx.restart();
  ctx.run();
  BOOST_TEST(s.stats().component_failures == 2u);
  BOOST_TEST(s.stats().starts == 3u);
  BOOST_TEST(s.stats().probe_failures == 0u);
  BOOST_TEST(w.running == 0);
}

BOOST_AUTO_TEST_CASE(slow_stop_is_reported_and_never_overlaps_a_restart) {
  asio::io_context ctx;
  world w;
  w.ignore_cancel_for = 30ms;
  auto options = fast_options();
  options.stop_timeout = 5ms;
  corvo::supervisor s([&] { return component(w); }, [&] { return probe(w); }, options);
  asio::cancellation_signal stop;
  std::exception_ptr ended;
  corvo::test::run(ctx, run_both(w, s, stop, ended));
  ctx.restart();
  ctx.run();
  BOOST_TEST(s.stats().stop_overruns == 2u);  // the outage and the final cancellation
  BOOST_TEST(w.max_running == 1);             // the restart waited for the slow stop
  BOOST_TEST(w.running == 0);
}

BOOST_AUTO_TEST_CASE(probe_that_hangs_counts_as_failed) {
  asio::io_context ctx;
  auto options = fast_options();
  options.probe_timeout = 5ms;
  int probes = 0;
  auto hanging_probe = [&probes]() -> asio::awaitable<bool> {
    ++probes;
    co_await corvo::sleep_for(1h);
    co_return true;
  };
  corvo::supervisor s([]() -> asio::awaitable<void> { co_return; }, hanging_probe, options);
  asio::steady_timer limit(ctx, 100ms);
  asio::cancellation_signal stop;
  limit.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
  asio::co_spawn(ctx, run_supervisor(s), asio::bind_cancellation_slot(stop.slot(), asio::detached));
  ctx.run();
  BOOST_TEST(probes >= 2);
  // Every probe failed by timing out, except possibly the last one, when the final
  // cancellation interrupted it (an interrupted probe is not a failure of the dependency).
  const auto failures = s.stats().probe_failures;
  const auto probed = static_cast<std::uint64_t>(probes);
  BOOST_TEST((failures == probed || failures + 1 == probed));
  BOOST_TEST(s.stats().starts == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
