// `corvo top` against a real redis-server and an ops endpoint served by the test: the store's
// counts and the oldest due task's lateness each refresh, and from the endpoint runs per second
// and lateness percentiles. The endpoint's collector adds exactly 10 acked runs and one
// lateness observation of 20 ms per scrape, so each refresh after the first must report
// acked_per_s × interval_s = 10 and a p50 of 0.025 s (the bucket holding 20 ms).
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/ops/endpoints.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/ops/server.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace ops = corvo::ops;
namespace redis = corvo::redis;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

// 1 dead letter, then 2 tasks due 2 s ago (waiting: nothing claims them), namespace "topns".
asio::awaitable<void> fill(redis_store& s) {
  task t;
  t.id = "doomed";
  t.type = "report";
  t.due = now() - 2s;
  co_await s.schedule(t);
  const auto shard = s.shard_of("doomed");
  auto claimed = co_await s.claim(shard, 10, 60s);
  BOOST_REQUIRE_EQUAL(claimed.tasks.size(), 1u);
  failure f{"doomed", claimed.tasks[0].token, "boom", std::nullopt};
  BOOST_REQUIRE(co_await s.nack(shard, f));
  for (const char* id : {"a", "b"}) {
    t.id = id;
    co_await s.schedule(t);
  }
}

// An ops endpoint on its own thread whose every scrape adds 10 acked runs and one 20 ms
// lateness observation to namespace "topns".
struct endpoint {
  asio::io_context ctx;
  ops::registry metrics;
  ops::router routes{ops::access_policy{"", "csrf", {}}};
  std::unique_ptr<ops::server> http;
  std::thread thread;
  asio::cancellation_signal stop;

  endpoint() {
    ops::counter& acked = metrics.counter("corvo_schedule_acked_total", "Runs acknowledged",
                                          {{"namespace", "topns"}});
    ops::histogram& late =
        metrics.histogram("corvo_schedule_lateness_seconds", "Start - due", ops::latency_buckets(),
                          {{"namespace", "topns"}, {"type", "report"}});
    metrics.add_collector([&acked, &late] {
      acked.inc(10);
      late.observe(0.02);
    });
    ops::add_metrics_route(routes, metrics);
    ops::server_options o;
    o.listen.port(0);
    http = std::make_unique<ops::server>(ctx.get_executor(), o, routes);
    http->open();
    asio::co_spawn(ctx, http->run(),
                   asio::bind_cancellation_slot(stop.slot(), [](std::exception_ptr) {}));
    thread = std::thread([this] { ctx.run(); });
  }
  ~endpoint() {
    asio::post(ctx, [this] { stop.emit(asio::cancellation_type::terminal); });
    thread.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(http->local_endpoint().port());
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_top)

BOOST_AUTO_TEST_CASE(counts_lateness_and_rates_each_refresh) {
  corvo::test::redis_server server;
  {
    asio::io_context ctx;
    redis::client conn(ctx.get_executor(), redis::client_config::from_url(server.url()));
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
    redis_store s(conn, redis::client_config::from_url(server.url()),
                  {.name_space = "topns", .shards = 2});
    corvo::test::run(ctx, fill(s), [&] { conn.cancel(); });
  }
  endpoint ep;
  const std::vector<std::string> store{"--redis", server.url(), "--namespace", "topns"};
  std::vector<std::string> argv{corvo::test::corvo_program().string(),
                                "top",
                                "--metrics",
                                ep.url(),
                                "--interval",
                                "200ms",
                                "--iterations",
                                "3",
                                "--json"};
  argv.insert(argv.end(), store.begin(), store.end());
  const auto r = corvo::test::run_command(argv, 30s);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::istringstream lines(r.out);
  std::vector<json::object> refreshes;
  for (std::string line; std::getline(lines, line);) {
    refreshes.push_back(json::parse(line).as_object());
  }
  BOOST_REQUIRE_EQUAL(refreshes.size(), 3u);
  for (std::size_t i = 0; i < refreshes.size(); ++i) {
    const auto& o = refreshes[i];
    BOOST_TEST(o.at("scheduled").as_int64() == 2);
    BOOST_TEST(o.at("due").as_int64() == 2);
    BOOST_TEST(o.at("in_flight").as_int64() == 0);
    BOOST_TEST(o.at("dead").as_int64() == 1);
    BOOST_TEST(o.at("oldest_due_late_s").as_double() >= 2.0);
    if (i == 0) {
      BOOST_TEST(!o.contains("acked_per_s"));  // rates need two scrapes
      continue;
    }
    const double interval = o.at("interval_s").as_double();
    BOOST_TEST(interval >= 0.2);
    BOOST_TEST(o.at("acked_per_s").as_double() * interval == 10.0,
               boost::test_tools::tolerance(1e-9));
    BOOST_TEST(o.at("retried_per_s").as_double() == 0.0);
    BOOST_TEST(o.at("lateness_p50_s").as_double() == 0.025);
    BOOST_TEST(o.at("lateness_p99_s").as_double() == 0.025);
  }

  // The terminal view, once, without endpoints.
  argv = {corvo::test::corvo_program().string(), "top", "--iterations", "1"};
  argv.insert(argv.end(), store.begin(), store.end());
  const auto text = corvo::test::run_command(argv, 30s);
  BOOST_REQUIRE_MESSAGE(text.exit_code == 0, text.err);
  BOOST_TEST(text.out.find("corvo top  namespace topns") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("tasks      scheduled 2  due now 2  in flight 0  dead 1\n") !=
                 std::string::npos,
             text.out);
  BOOST_TEST(text.out.find("s late\n") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("give --metrics") != std::string::npos, text.out);
}

BOOST_AUTO_TEST_SUITE_END()
