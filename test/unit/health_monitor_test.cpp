// health::monitor without servers: thresholds, timeouts, reported failures, wait_changed,
// the readiness summary.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/health/monitor.hpp>
#include <deque>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
using namespace std::chrono_literals;
using health::status;

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

struct recorder {
  std::vector<std::string> seen;
  void attach(health::monitor& m) {
    m.on_transition([this](const health::dependency& d, status from, status to, std::string_view) {
      seen.push_back(d.name() + ":" + std::string(to_string(from)) + "->" +
                     std::string(to_string(to)));
    });
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(health_monitor)

BOOST_AUTO_TEST_CASE(thresholds_move_between_up_degraded_and_down) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  recorder r;
  r.attach(m);
  health::probe_options o;
  o.failures_to_down = 2;
  o.successes_to_up = 2;
  const auto d = m.add_passive("db", o);
  BOOST_TEST((d.state() == status::down));  // not probed yet
  BOOST_TEST(m.report(d).detail == "not probed yet");

  m.record(d, {status::up, ""});
  BOOST_TEST((d.state() == status::down));  // 1 of 2 successes
  m.record(d, {status::up, ""});
  BOOST_TEST((d.state() == status::up));
  m.record(d, {status::down, "refused"});
  BOOST_TEST((d.state() == status::degraded));  // 1 of 2 failures
  m.record(d, {status::up, ""});
  BOOST_TEST((d.state() == status::up));  // a success in between resets the count
  m.record(d, {status::down, "refused"});
  m.record(d, {status::down, "refused again"});
  BOOST_TEST((d.state() == status::down));
  BOOST_TEST(m.report(d).detail == "refused again");
  m.record(d, {status::up, ""});
  m.record(d, {status::down, "flap"});
  m.record(d, {status::up, ""});
  BOOST_TEST((d.state() == status::down));  // successes must be consecutive
  m.record(d, {status::degraded, "one replica missing"});
  BOOST_TEST((d.state() == status::degraded));  // a degraded answer serves: counts as success

  const std::vector<std::string> expected{"db:down->up",       "db:up->degraded",
                                          "db:degraded->up",   "db:up->degraded",
                                          "db:degraded->down", "db:down->degraded"};
  BOOST_TEST(r.seen == expected, boost::test_tools::per_element());
  const auto st = m.report(d).stats;
  BOOST_TEST(st.probes == 10u);
  BOOST_TEST(st.failures == 4u);
  BOOST_TEST(st.transitions == 6u);
  BOOST_TEST(st.downs == 1u);
  BOOST_TEST(m.version() == 6u);
}

BOOST_AUTO_TEST_CASE(bad_registrations_are_refused) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  m.add_passive("a");
  BOOST_CHECK_THROW(m.add_passive("a"), std::invalid_argument);
  health::probe_options zero;
  zero.failures_to_down = 0;
  BOOST_CHECK_THROW(m.add_passive("b", zero), std::invalid_argument);
  BOOST_CHECK_THROW(m.find("nope"), std::out_of_range);
  BOOST_TEST(m.find("a").name() == "a");
}

// A probe that hangs is down after one timeout; one that throws is down with its text.
BOOST_AUTO_TEST_CASE(a_hung_probe_is_down_after_its_timeout) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  bool hang = false;
  bool throw_instead = false;
  auto probe = [&]() -> asio::awaitable<health::probe_result> {
    if (throw_instead) {
      throw std::runtime_error("boom");
    }
    if (hang) {
      co_await corvo::sleep_for(1h);
    }
    co_return health::probe_result{status::up, ""};
  };
  health::probe_options o;
  o.interval = 20ms;
  o.timeout = 100ms;
  const auto d = m.add("hangs", probe, o);
  background bg;
  bg.spawn(io, m.run());
  corvo::test::run(
      io,
      [&]() -> asio::awaitable<void> {
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::up; }, 5s));
        hang = true;
        const auto began = std::chrono::steady_clock::now();
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::down; }, 5s));
        const auto took = std::chrono::steady_clock::now() - began;
        BOOST_TEST_MESSAGE("hung probe detected after "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                           << " ms");
        BOOST_TEST(took >= 100ms);  // not before the timeout
        BOOST_TEST(m.report(d).detail == "no answer within 100 ms");
        hang = false;
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::up; }, 5s));
        throw_instead = true;
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::down; }, 5s));
        BOOST_TEST(m.report(d).detail.find("boom") != std::string::npos);
      }(),
      [&] { bg.stop(); });
}

// A reported failure takes effect at once and the probe runs again right away, not after
// its (here: one hour) interval.
BOOST_AUTO_TEST_CASE(a_reported_failure_is_down_at_once_and_probed_again) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  int probes = 0;
  auto probe = [&]() -> asio::awaitable<health::probe_result> {
    ++probes;
    if (probes == 2) {
      co_return health::probe_result{status::down, "second probe fails"};
    }
    co_return health::probe_result{status::up, ""};
  };
  health::probe_options o;
  o.interval = 1h;
  const auto d = m.add("redis", probe, o);
  background bg;
  bg.spawn(io, m.run());
  corvo::test::run(
      io,
      [&]() -> asio::awaitable<void> {
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::up; }, 5s));
        const auto v = m.version();
        d.report_failure("connection lost");
        BOOST_TEST((d.state() == status::down));  // synchronously
        BOOST_TEST(m.report(d).stats.reports == 1u);
        // The immediate re-probe fails (probe 2); the next would only run after the interval.
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return probes == 2; }, 5s));
        BOOST_TEST((d.state() == status::down));
        BOOST_TEST(m.report(d).detail == "second probe fails");
        BOOST_TEST(co_await m.wait_changed(v) == v + 1);
        // Another report: probe 3 runs at once and brings it back.
        d.report_failure("again");
        BOOST_TEST_REQUIRE(
            co_await corvo::test::eventually([&] { return d.state() == status::up; }, 5s));
        BOOST_TEST(probes == 3);
        BOOST_TEST(m.summary().live);
        BOOST_TEST(m.summary().ready);
      }(),
      [&] { bg.stop(); });
}

BOOST_AUTO_TEST_CASE(a_success_from_a_probe_started_before_a_reported_failure_is_ignored) {
  // The probe answers "up" for a request sent before a component reported the connection
  // lost: that answer is stale and must not bring the dependency back (it would restart
  // the component in the middle of the outage). Only a probe started after the report counts.
  asio::io_context io;
  health::monitor m(io.get_executor());
  int probes = 0;
  bool release = false;
  auto probe = [&]() -> asio::awaitable<health::probe_result> {
    const int n = ++probes;
    if (n == 2) {  // in flight while the failure is reported, then answers "up"
      while (!release) {
        co_await corvo::sleep_for(1ms);
      }
      co_return health::probe_result{status::up, "stale"};
    }
    if (n == 3) {
      co_return health::probe_result{status::down, "after the report"};
    }
    co_return health::probe_result{status::up, ""};
  };
  health::probe_options o;
  o.interval = 20ms;
  o.timeout = 10s;
  const auto d = m.add("redis", probe, o);
  background bg;
  bg.spawn(io, m.run());
  corvo::test::run(
      io,
      [&]() -> asio::awaitable<void> {
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return probes == 2; }, 5s));
        BOOST_TEST((d.state() == status::up));
        d.report_failure("connection lost");
        BOOST_TEST((d.state() == status::down));
        release = true;
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] { return m.report(d).detail == "after the report"; }, 5s));
        // Probe 2's "up" was dropped; probe 3 (started after the report) says down.
        BOOST_TEST((d.state() == status::down));
        BOOST_TEST(m.report(d).detail == "after the report");
        BOOST_TEST(m.report(d).stats.transitions == 2u);  // (down->)up, up->down: no flap
      }(),
      [&] { bg.stop(); });
}

BOOST_AUTO_TEST_CASE(wait_changed_wakes_on_a_transition) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto d = m.add_passive("q");
  std::uint64_t woke_with = 0;
  asio::co_spawn(io, m.wait_changed(0), [&](std::exception_ptr e, std::uint64_t v) {
    BOOST_TEST(!e);
    woke_with = v;
  });
  io.poll();
  BOOST_TEST(woke_with == 0u);
  m.record(d, {status::up, ""});
  io.poll();
  BOOST_TEST(woke_with == 1u);
}

BOOST_AUTO_TEST_CASE(the_summary_says_ready_and_live) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto a = m.add_passive("a");
  const auto b = m.add_passive("b");
  BOOST_TEST(!m.summary().ready);
  m.record(a, {status::up, ""});
  m.record(b, {status::degraded, "slow"});
  auto s = m.summary();
  BOOST_TEST(s.ready);  // degraded still serves
  BOOST_TEST(!s.live);  // the monitor is not running
  const auto json = s.to_json();
  BOOST_TEST(json.at("ready").as_bool());
  BOOST_TEST(json.at("dependencies").as_array().size() == 2u);
  BOOST_TEST(json.at("dependencies").as_array()[1].at("state").as_string() == "degraded");
  BOOST_TEST(json.at("dependencies").as_array()[1].at("detail").as_string() == "slow");
}

BOOST_AUTO_TEST_SUITE_END()
