// The metrics registry and its Prometheus text rendering (include/corvo/ops/metrics.hpp),
// and the scheduler's schedule counter it mirrors (corvo_schedule_scheduled_total).
#include <boost/test/unit_test.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <stdexcept>
#include <support/run_coroutine.hpp>
#include <vector>

namespace ops = corvo::ops;

BOOST_AUTO_TEST_SUITE(ops_metrics)

BOOST_AUTO_TEST_CASE(renders_counters_and_gauges_with_sorted_escaped_labels) {
  ops::registry r;
  r.counter("corvo_runs_total", "Runs", {{"type", "mail"}, {"namespace", "a"}}).inc(3);
  r.counter("corvo_runs_total", "Runs", {{"namespace", "a"}, {"type", "mail"}}).inc();  // same
  r.gauge("corvo_depth", "Depth\nof \\ queue", {{"queue", "q\"1\"\n\\"}}).set(-2.5);
  BOOST_TEST(r.render() ==
             "# HELP corvo_depth Depth\\nof \\\\ queue\n"
             "# TYPE corvo_depth gauge\n"
             "corvo_depth{queue=\"q\\\"1\\\"\\n\\\\\"} -2.5\n"
             "# HELP corvo_runs_total Runs\n"
             "# TYPE corvo_runs_total counter\n"
             "corvo_runs_total{namespace=\"a\",type=\"mail\"} 4\n");
  BOOST_TEST(r.value("corvo_runs_total", {{"type", "mail"}, {"namespace", "a"}}) == 4);
  BOOST_TEST(r.value("corvo_runs_total", {{"type", "sms"}, {"namespace", "a"}}) == -1);
}

BOOST_AUTO_TEST_CASE(renders_histograms_with_cumulative_buckets) {
  ops::registry r;
  auto& h = r.histogram("corvo_late_seconds", "Lateness", {0.25, 1}, {{"type", "t"}});
  h.observe(0.125);
  h.observe(0.25);  // on the bound: counted in le="0.25"
  h.observe(0.5);
  h.observe(7);
  BOOST_TEST(r.render() ==
             "# HELP corvo_late_seconds Lateness\n"
             "# TYPE corvo_late_seconds histogram\n"
             "corvo_late_seconds_bucket{type=\"t\",le=\"0.25\"} 2\n"
             "corvo_late_seconds_bucket{type=\"t\",le=\"1\"} 3\n"
             "corvo_late_seconds_bucket{type=\"t\",le=\"+Inf\"} 4\n"
             "corvo_late_seconds_sum{type=\"t\"} 7.875\n"
             "corvo_late_seconds_count{type=\"t\"} 4\n");
}

// A histogram kept elsewhere (the Redis connection's latency counts) mirrored at each scrape:
// per-bucket counts in, cumulative buckets out; a later copy replaces the earlier one.
BOOST_AUTO_TEST_CASE(mirrors_histogram_counts_kept_elsewhere) {
  ops::registry r;
  auto& h = r.histogram("corvo_req_seconds", "Requests", {0.001, 0.01}, {{"client", "c"}});
  const std::vector<std::uint64_t> first{3, 0, 1};
  h.set_counts(first, 0.5);
  BOOST_TEST(r.render() ==
             "# HELP corvo_req_seconds Requests\n"
             "# TYPE corvo_req_seconds histogram\n"
             "corvo_req_seconds_bucket{client=\"c\",le=\"0.001\"} 3\n"
             "corvo_req_seconds_bucket{client=\"c\",le=\"0.01\"} 3\n"
             "corvo_req_seconds_bucket{client=\"c\",le=\"+Inf\"} 4\n"
             "corvo_req_seconds_sum{client=\"c\"} 0.5\n"
             "corvo_req_seconds_count{client=\"c\"} 4\n");
  const std::vector<std::uint64_t> later{3, 2, 1};
  h.set_counts(later, 0.52);
  BOOST_TEST(h.count() == 6u);
  BOOST_TEST(h.sum() == 0.52);
  BOOST_TEST(r.value("corvo_req_seconds", {{"client", "c"}}) == 6);
  const std::vector<std::uint64_t> too_few{1, 2};
  BOOST_CHECK_THROW(h.set_counts(too_few, 0), std::invalid_argument);
  BOOST_TEST(h.count() == 6u);
}

BOOST_AUTO_TEST_CASE(refuses_conflicting_or_invalid_registrations) {
  ops::registry r;
  r.counter("corvo_x_total", "X");
  BOOST_CHECK_THROW(r.gauge("corvo_x_total", "X"), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("corvo_x_total", "other help"), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("1bad", "B"), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("corvo-dash", "B"), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("corvo_y_total", "Y", {{"bad-label", "v"}}), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("corvo_y_total", "Y", {{"a", "1"}, {"a", "2"}}),
                    std::invalid_argument);
  BOOST_CHECK_THROW(r.histogram("corvo_h", "H", {1, 0.5}), std::invalid_argument);
  r.histogram("corvo_h2", "H", {1, 2});
  BOOST_CHECK_THROW(r.histogram("corvo_h2", "H", {1, 3}), std::invalid_argument);
  BOOST_CHECK_THROW(r.histogram("corvo_h3", "H", {1}, {{"le", "1"}}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(formats_special_values) {
  BOOST_TEST(ops::format_value(1e20) == "1e+20");
  BOOST_TEST(ops::format_value(42) == "42");
  BOOST_TEST(ops::format_value(0.25) == "0.25");
  BOOST_TEST(ops::format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  BOOST_TEST(ops::format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  BOOST_TEST(ops::format_value(std::nan("")) == "NaN");
}

boost::asio::awaitable<void> failing_collector() {
  throw std::runtime_error("redis down");
  co_return;
}

BOOST_AUTO_TEST_CASE(collectors_run_before_rendering_and_a_failing_one_is_counted) {
  ops::registry r;
  int calls = 0;
  r.add_collector([&] { r.gauge("corvo_g", "G").set(++calls); });
  r.add_async_collector([] { return failing_collector(); });
  boost::asio::io_context io;
  corvo::test::run(io, r.collect());
  auto text = r.render();
  BOOST_TEST(calls == 1);
  BOOST_TEST(r.value("corvo_g") == 1);
  BOOST_TEST(r.value("corvo_ops_collector_errors_total") == 1);
  BOOST_TEST(text.find("corvo_g 1\n") != std::string::npos);
}

namespace {

namespace schedule = corvo::schedule;

schedule::task task_of(std::string id, std::string type) {
  schedule::task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.due = schedule::now() + std::chrono::hours(1);
  t.max_attempts = 3;
  return t;
}

// mail: 2 schedule() + 1 schedule_if_absent() that adds (the one that finds m1 is not
// counted); sms: schedule() + schedule_deduplicated() that schedules (the one dropped within
// the window is not); report: schedule_many() of 3 tasks of which one (no id) is refused.
boost::asio::awaitable<void> schedule_known_mix(schedule::scheduler& s) {
  // (Named tasks: GCC 12 destroys an aggregate temporary in a co_await expression twice.)
  auto m1 = task_of("m1", "mail"), m2 = task_of("m2", "mail");
  auto m1_again = task_of("m1", "mail"), m3 = task_of("m3", "mail");
  co_await s.schedule(m1);
  co_await s.schedule(m2);
  BOOST_TEST(!co_await s.schedule_if_absent(m1_again));
  BOOST_TEST(co_await s.schedule_if_absent(m3));
  auto s1 = task_of("s1", "sms"), s2 = task_of("s2", "sms"), s2_again = task_of("s2", "sms");
  co_await s.schedule(s1);
  schedule::dedup_options drop;
  drop.window = std::chrono::hours(1);
  drop.mode = schedule::dedup_mode::drop;
  const auto first = co_await s.schedule_deduplicated(s2, drop);
  const auto second = co_await s.schedule_deduplicated(s2_again, drop);
  BOOST_TEST((first == schedule::dedup_outcome::scheduled));
  BOOST_TEST((second == schedule::dedup_outcome::dropped));
  std::vector<schedule::task> batch{task_of("r1", "report"), task_of("", "report"),
                                    task_of("r2", "report")};
  BOOST_CHECK_THROW(co_await s.schedule_many(batch), schedule::schedule_many_error);
}

}  // namespace

BOOST_AUTO_TEST_CASE(scheduled_counter_counts_each_stored_schedule_per_type) {
  boost::asio::io_context ctx;
  schedule::scheduler s(ctx.get_executor(), schedule::scheduler_options{});
  ops::registry metrics;
  ops::watch_scheduler(metrics, s, "shop");
  corvo::test::run(ctx, schedule_known_mix(s));
  const std::map<std::string, std::uint64_t, std::less<>> expected{
      {"mail", 3}, {"report", 2}, {"sms", 2}};
  BOOST_TEST((s.scheduled_by_type() == expected));
  const auto text = metrics.render();
  BOOST_TEST(metrics.value("corvo_schedule_scheduled_total",
                           {{"namespace", "shop"}, {"type", "mail"}}) == 3);
  BOOST_TEST(metrics.value("corvo_schedule_scheduled_total",
                           {{"namespace", "shop"}, {"type", "sms"}}) == 2);
  BOOST_TEST(metrics.value("corvo_schedule_scheduled_total",
                           {{"namespace", "shop"}, {"type", "report"}}) == 2);
  BOOST_TEST(text.find("# TYPE corvo_schedule_scheduled_total counter\n") != std::string::npos,
             text);
}

BOOST_AUTO_TEST_SUITE_END()
