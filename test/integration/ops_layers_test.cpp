// The ops collectors and dashboard views of queues and pub/sub against a real redis-server:
// exact metric values after a known workload (queue items taken, retried, dead-lettered,
// depth and dead; pub/sub messages received, delivered and dropped by the overflow policy)
// and the dashboard's /api/overview queues for the same state.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/dashboard.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/ops/router.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <memory>

#include "support/eventually.hpp"
#include "support/queue_fixture.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;
namespace ops = corvo::ops;
namespace pubsub = corvo::pubsub;
namespace queue = corvo::queue;
namespace redis = corvo::redis;
using corvo::test::background_run;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

struct fixture {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client{ctx.get_executor(), redis::client_config::from_url(server.url())};
  ops::registry metrics;
  ops::dashboard board;
  ops::router routes{ops::access_policy{"", "csrf", {}}};

  fixture() {
    asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
    board.install(routes);
  }
};

queue::queue_options queue_options() {
  queue::queue_options o;
  o.name = "jobs";
  o.consumer = "c1";
  o.max_in_flight = 4;
  o.batch = 8;
  o.block_timeout = 200ms;
  o.drain_timeout = 2s;
  o.max_attempts = 3;
  o.heartbeat_ttl = 3s;
  o.reap_interval = 100ms;
  return o;
}

// A failing handler for the body "poison", a succeeding one for the others.
asio::awaitable<void> handle_item(const queue::item& it) {
  if (it.body == "poison") {
    throw std::runtime_error("poisoned");
  }
  co_return;
}

asio::awaitable<json::value> get_json(ops::router& routes, std::string target) {
  ops::request req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  auto res = co_await routes.handle(std::move(req));
  BOOST_TEST_REQUIRE(res.result_int() == 200u, target << ": " << res.body());
  co_return json::parse(res.body());
}

double value(ops::registry& m, std::string_view name, const ops::label_set& labels) {
  return m.value(name, labels);
}

asio::awaitable<void> queues(fixture& f) {
  // ---- queues: 10 items and a poison one (3 attempts, then dead); 5 in an idle queue ----
  queue::producer jobs(f.client, "jobs");
  co_await jobs.push_raw("poison");
  for (int i = 0; i < 10; ++i) {
    co_await jobs.push_raw("ok" + std::to_string(i));
  }
  queue::producer idle(f.client, "idle");
  for (int i = 0; i < 5; ++i) {
    co_await idle.push_raw("waiting" + std::to_string(i));
  }
  queue::reliable_queue q(f.client, queue_options(), handle_item);
  ops::watch_queue_consumer(f.metrics, q.stats(), "jobs");
  ops::watch_queue(f.metrics, f.client, "jobs");
  ops::watch_queue(f.metrics, f.client, "idle");
  f.board.add_queue(f.client, "jobs");
  f.board.add_queue(f.client, "idle");
  background_run queue_run;
  queue_run.start(f.ctx, q);

  BOOST_TEST_REQUIRE(co_await eventually(
      [&] { return q.stats().dead_lettered == 1 && q.stats().succeeded == 10; }, 30s));
  queue_run.stop();
  BOOST_TEST_REQUIRE(co_await eventually([&] { return queue_run.done; }, 20s));

  co_await f.metrics.collect();
  const auto text = f.metrics.render();
  const ops::label_set jobs_label{{"queue", "jobs"}};
  BOOST_TEST(value(f.metrics, "corvo_queue_items_taken_total", jobs_label) == 13);
  BOOST_TEST(value(f.metrics, "corvo_queue_items_succeeded_total", jobs_label) == 10);
  BOOST_TEST(value(f.metrics, "corvo_queue_items_retried_total", jobs_label) == 2);
  BOOST_TEST(value(f.metrics, "corvo_queue_items_dead_lettered_total", jobs_label) == 1);
  BOOST_TEST(value(f.metrics, "corvo_queue_items_stale_total", jobs_label) == 0);
  BOOST_TEST(value(f.metrics, "corvo_queue_depth", jobs_label) == 0);
  BOOST_TEST(value(f.metrics, "corvo_queue_processing", jobs_label) == 0);
  BOOST_TEST(value(f.metrics, "corvo_queue_dead", jobs_label) == 1);
  BOOST_TEST(value(f.metrics, "corvo_queue_depth", {{"queue", "idle"}}) == 5);
  BOOST_TEST(value(f.metrics, "corvo_queue_dead", {{"queue", "idle"}}) == 0);
  BOOST_TEST(text.find("corvo_queue_depth{queue=\"idle\"} 5\n") != std::string::npos, text);

  // ---- the dashboard's views of the same state ----
  const auto overview = co_await get_json(f.routes, "/api/overview");
  const auto& queues = overview.at("queues").as_array();
  BOOST_TEST_REQUIRE(queues.size() == 2u);
  BOOST_TEST(queues[0].at("name").as_string() == "jobs");
  BOOST_TEST(queues[0].at("depth").as_int64() == 0);
  BOOST_TEST(queues[0].at("dead").as_int64() == 1);
  BOOST_TEST(queues[1].at("name").as_string() == "idle");
  BOOST_TEST(queues[1].at("depth").as_int64() == 5);
}

// Seven messages into a subscriber whose buffer holds 5 (drop_oldest), none received yet:
// 7 received, 2 dropped, 5 buffered; then 5 delivered. (A registry of its own: the queue
// consumer watched by the fixture's registry is gone.)
asio::awaitable<void> pubsub_counts(fixture& f) {
  auto ex = co_await asio::this_coro::executor;
  pubsub::subscriber_options o;
  o.buffer.max_messages = 5;
  pubsub::subscriber sub(ex, redis::client_config::from_url(f.server.url()), o);
  ops::registry metrics;
  ops::watch_subscriber(metrics, sub, "news");
  corvo::task_group group(ex);
  co_await group.spawn(sub.run());
  std::vector<std::string> channels{"news"};  // (GCC 12: no braced temporary in co_await)
  co_await sub.subscribe(channels);
  for (int i = 0; i < 7; ++i) {
    redis::request req;
    req.push("PUBLISH", "news", "m" + std::to_string(i));
    co_await f.client.exec(req);
  }
  BOOST_TEST_REQUIRE(co_await eventually([&] { return sub.stats().received == 7; }, 10s));
  metrics.render();
  const ops::label_set l{{"subscriber", "news"}};
  BOOST_TEST(metrics.value("corvo_pubsub_received_total", l) == 7);
  BOOST_TEST(metrics.value("corvo_pubsub_dropped_total", l) == 2);
  BOOST_TEST(metrics.value("corvo_pubsub_buffered", l) == 5);
  BOOST_TEST(metrics.value("corvo_pubsub_delivered_total", l) == 0);
  for (int i = 0; i < 5; ++i) {
    const auto m = co_await sub.receive();
    BOOST_TEST(m.payload == "m" + std::to_string(i + 2));  // the two oldest were dropped
  }
  metrics.render();
  BOOST_TEST(metrics.value("corvo_pubsub_delivered_total", l) == 5);
  BOOST_TEST(metrics.value("corvo_pubsub_buffered", l) == 0);
  BOOST_TEST(metrics.value("corvo_pubsub_resubscriptions_total", l) == 0);
  group.cancel();
  co_await group.join();
}

asio::awaitable<void> workload(fixture& f) {
  co_await queues(f);
  co_await pubsub_counts(f);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_layers)

BOOST_AUTO_TEST_CASE(queue_and_pubsub_metrics_and_views_after_a_known_workload) {
  fixture f;
  corvo::test::run(f.ctx, workload(f), [&] { f.client.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
