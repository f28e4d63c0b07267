// The ops collectors and dashboard views of the Redis client, streams, queues and pub/sub
// against a real redis-server: exact metric values after a known workload (Redis requests,
// errors and latency counts; stream entries handled, failed, retried and dead-lettered, length,
// pending and lag; queue items taken, retried, dead-lettered, depth and dead; pub/sub messages
// received, delivered and dropped by the overflow policy, resubscriptions after a reconnect),
// the dashboard's /api/streams, /api/stream/dead (and a replay from it) and /api/overview
// (queues) answers for the same state, and `promtool check metrics` on live scrapes of the
// endpoint holding those series.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/dashboard.hpp>
#include <corvo/ops/endpoints.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/ops/router.hpp>
#include <corvo/ops/server.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/stream/admin.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <corvo/stream/producer.hpp>
#include <corvo/stream/typed_handlers.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "support/eventually.hpp"
#include "support/queue_fixture.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/stream_fixture.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
namespace http = boost::beast::http;
namespace ops = corvo::ops;
namespace pubsub = corvo::pubsub;
namespace queue = corvo::queue;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using corvo::test::background_consumer;
using corvo::test::eventually;
using corvo::test::order;
using namespace std::chrono_literals;

namespace {

// A queue's run() in the background. Its cancellation signal and outcome are shared with the
// run's completion handler, so they outlive this object when a failed assertion leaves the
// test body early (the queue, destroyed then, stops its run; the signal must still exist when
// the run's operations clear their cancellation slots).
class queue_runner {
 public:
  void start(asio::io_context& ctx, queue::reliable_queue& q) {
    auto s = state_;
    asio::co_spawn(ctx, q.run(),
                   asio::bind_cancellation_slot(s->signal.slot(),
                                                [s](std::exception_ptr) { s->done = true; }));
  }
  void stop() { state_->signal.emit(asio::cancellation_type::terminal); }
  bool done() const { return state_->done; }

 private:
  struct state {
    asio::cancellation_signal signal;
    bool done = false;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

const std::string stream_key = "{shop}:events";
const std::string stream_param = "%7Bshop%7D%3Aevents";  // stream_key in a URL

struct fixture {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir{"ops_layers"};
  asio::io_context ctx;
  redis::client client{ctx.get_executor(), redis::client_config::from_url(server.url())};
  stream::admin admin{client};
  ops::registry metrics;
  ops::dashboard board;
  ops::router routes{ops::access_policy{"", "csrf", {}}};

  fixture() {
    asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
    board.install(routes);
  }
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// GET /metrics over a socket from an ops::server serving `metrics` (the live scrape), checked
// by `promtool check metrics`; returns the body.
asio::awaitable<std::string> scrape_and_check(fixture& f, ops::registry& metrics,
                                              std::string name) {
  auto ex = co_await asio::this_coro::executor;
  ops::router routes{ops::access_policy{"", "csrf", {}}};
  ops::add_metrics_route(routes, metrics);
  ops::server_options options;
  options.listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  ops::server endpoint(ex, options, routes);
  endpoint.open();
  const auto port = endpoint.local_endpoint().port();
  corvo::task_group group(ex);
  co_await group.spawn(endpoint.run());

  beast::tcp_stream conn(ex);
  conn.expires_after(10s);
  co_await conn.async_connect(endpoint.local_endpoint(), asio::use_awaitable);
  http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  co_await http::async_write(conn, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(conn, buffer, res, asio::use_awaitable);
  group.cancel();  // with the connection still open (keep-alive)
  co_await group.join();
  BOOST_TEST(endpoint.connections() == 0u);  // run() ended after its connections
  BOOST_TEST_REQUIRE(res.result_int() == 200u, res.body());

  const auto scrape = f.dir.path() / (name + ".txt");
  const auto report = f.dir.path() / (name + ".promtool");
  std::ofstream(scrape) << res.body();
  const std::string command =
      "promtool check metrics < '" + scrape.string() + "' > '" + report.string() + "' 2>&1";
  const int status = std::system(command.c_str());
  BOOST_TEST(status == 0, name << ": promtool: " << read_file(report) << "\n" << res.body());
  co_return res.body();
}

stream::consumer_options stream_options() {
  stream::consumer_options o;
  o.group = "billing";
  o.consumer = "worker-1";
  o.streams = {stream_key};
  o.block = 200ms;
  o.retry_backoff = {5ms, 20ms};
  o.redis_retry = {10ms, 200ms};
  o.drain_timeout = 5s;
  o.max_deliveries = 3;
  return o;
}

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

asio::awaitable<json::value> call_json(ops::router& routes, http::verb verb, std::string target) {
  ops::request req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (verb == http::verb::post) {
    req.set("X-CSRF-Token", "csrf");
  }
  auto res = co_await routes.handle(std::move(req));
  BOOST_TEST_REQUIRE(res.result_int() == 200u, target << ": " << res.body());
  co_return json::parse(res.body());
}

asio::awaitable<json::value> get_json(ops::router& routes, std::string target) {
  co_return co_await call_json(routes, http::verb::get, std::move(target));
}

double value(ops::registry& m, std::string_view name, const ops::label_set& labels) {
  return m.value(name, labels);
}

asio::awaitable<void> streams_and_queues(fixture& f) {
  // ---- streams: 20 good entries and one whose handler always fails (3 deliveries) ----
  stream::producer out(f.client);
  auto fields = stream::producer::typed_fields("order.flaky", R"({"id":"f","amount":1})", "", {});
  co_await out.append_fields(stream_key, fields);
  for (int i = 0; i < 20; ++i) {
    fields = stream::producer::typed_fields(
        "order.created", R"({"id":"o)" + std::to_string(i) + R"(","amount":1})", "", {});
    co_await out.append_fields(stream_key, fields);
  }
  stream::typed_handlers handlers;
  handlers.on<order>("order.flaky", [](order) -> asio::awaitable<void> {
    throw std::runtime_error("payment service said no");
    co_return;
  });
  handlers.on<order>("order.created", [](order) -> asio::awaitable<void> { co_return; });
  stream::consumer consumer(f.client, stream_options());
  ops::watch_redis(f.metrics, f.client, "main");
  ops::watch_stream_consumer(f.metrics, consumer);
  ops::watch_streams(f.metrics, f.admin, {stream_key});
  f.board.add_stream(f.admin, stream_key, stream::dead_letter_key(stream_key));
  auto running = std::make_unique<background_consumer>(f.ctx.get_executor(), consumer, handlers);

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
  queue_runner queue_run;
  queue_run.start(f.ctx, q);

  BOOST_TEST_REQUIRE(co_await eventually(
      [&] {
        // 20 handled and acked; the dead-lettered one is acknowledged by the dead-letter move
        return consumer.stats().dead_lettered == 1 && consumer.stats().acked == 20;
      },
      30s));
  BOOST_TEST_REQUIRE(co_await eventually(
      [&] { return q.stats().dead_lettered == 1 && q.stats().succeeded == 10; }, 30s));
  running->stop();
  queue_run.stop();
  BOOST_TEST_REQUIRE(co_await eventually([&] { return running->done() && queue_run.done(); }, 20s));

  co_await f.metrics.collect();
  const auto text = f.metrics.render();
  const ops::label_set group{{"group", "billing"}, {"consumer", "worker-1"}};
  BOOST_TEST(value(f.metrics, "corvo_stream_entries_handled_total", group) == 20);
  BOOST_TEST(value(f.metrics, "corvo_stream_entries_failed_total", group) == 3);
  BOOST_TEST(value(f.metrics, "corvo_stream_entries_retried_total", group) == 2);
  BOOST_TEST(value(f.metrics, "corvo_stream_entries_dead_lettered_total", group) == 1);
  BOOST_TEST(value(f.metrics, "corvo_stream_entries_reclaimed_total", group) == 0);
  const ops::label_set on_stream{{"stream", stream_key}};
  const ops::label_set stream_group{{"stream", stream_key}, {"group", "billing"}};
  BOOST_TEST(value(f.metrics, "corvo_stream_length", on_stream) == 21);
  BOOST_TEST(value(f.metrics, "corvo_stream_group_pending", stream_group) == 0);
  BOOST_TEST(value(f.metrics, "corvo_stream_group_lag", stream_group) == 0);
  BOOST_TEST(value(f.metrics, "corvo_stream_group_consumers", stream_group) == 1);
  // Every request of the workload succeeded, each in the latency histogram once.
  const ops::label_set main_client{{"client", "main"}};
  BOOST_TEST(value(f.metrics, "corvo_redis_request_errors_total", main_client) == 0);
  BOOST_TEST(value(f.metrics, "corvo_redis_requests_total", main_client) ==
             static_cast<double>(f.client.standalone()->stats().requests));
  BOOST_TEST(value(f.metrics, "corvo_redis_request_duration_seconds", main_client) ==
             value(f.metrics, "corvo_redis_requests_total", main_client));
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

  const auto streams = co_await get_json(f.routes, "/api/streams");
  BOOST_TEST_REQUIRE(streams.at("streams").as_array().size() == 1u);
  const auto& s0 = streams.at("streams").as_array().at(0).as_object();
  BOOST_TEST(s0.at("stream").as_string() == stream_key);
  BOOST_TEST(s0.at("length").as_int64() == 21);
  BOOST_TEST(s0.at("dead_letters").as_int64() == 1);
  BOOST_TEST_REQUIRE(s0.at("groups").as_array().size() == 1u);
  const auto& g0 = s0.at("groups").as_array().at(0).as_object();
  BOOST_TEST(g0.at("name").as_string() == "billing");
  BOOST_TEST(g0.at("pending").as_int64() == 0);
  BOOST_TEST(g0.at("lag").as_int64() == 0);
  BOOST_TEST_REQUIRE(g0.at("consumers").as_array().size() == 1u);
  BOOST_TEST(g0.at("consumers").as_array()[0].at("name").as_string() == "worker-1");
  const auto dead = co_await get_json(f.routes, "/api/stream/dead?stream=" + stream_param);
  BOOST_TEST_REQUIRE(dead.at("entries").as_array().size() == 1u, json::serialize(dead));
  const auto& d0 = dead.at("entries").as_array()[0].as_object();
  BOOST_TEST(d0.at("group").as_string() == "billing");
  BOOST_TEST(d0.at("deliveries").as_int64() == 3);
  BOOST_TEST(std::string(d0.at("reason").as_string()).find("payment service said no") !=
             std::string::npos);

  // ---- the live scrape of these series (the consumers are still alive) ----
  const auto scraped = co_await scrape_and_check(f, f.metrics, "streams_queues_redis");
  BOOST_TEST(
      scraped.find("corvo_stream_entries_handled_total{consumer=\"worker-1\",group=\"billing\"} "
                   "20\n") != std::string::npos,
      scraped);

  // ---- replaying the dead letter from the dashboard: back in the stream, not delivered ----
  const std::string dead_id(d0.at("id").as_string());
  const auto replayed =
      co_await call_json(f.routes, http::verb::post,
                         "/api/stream/dead/replay?stream=" + stream_param + "&id=" + dead_id);
  BOOST_TEST(replayed.at("status").as_string() == "replayed", json::serialize(replayed));
  const auto after = co_await get_json(f.routes, "/api/stream/dead?stream=" + stream_param);
  BOOST_TEST(after.at("entries").as_array().empty(), json::serialize(after));
  co_await f.metrics.collect();
  f.metrics.render();
  BOOST_TEST(value(f.metrics, "corvo_stream_length", on_stream) == 22);
  BOOST_TEST(value(f.metrics, "corvo_stream_group_lag", stream_group) == 1);
  BOOST_TEST(value(f.metrics, "corvo_stream_group_pending", stream_group) == 0);
}

// Seven messages into a subscriber whose buffer holds 5 (drop_oldest), none received yet:
// 7 received, 2 dropped, 5 buffered; then 5 delivered; after a reconnect, 1 resubscription.
// (A registry of its own: the stream and queue consumers watched by the fixture's registry
// are gone.)
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
  // The server drops the subscriber's connection: the channel is subscribed again (exactly 1
  // resubscription), and a message published after that arrives.
  redis::request kill;
  kill.push("CLIENT", "KILL", "TYPE", "pubsub");
  redis::response<std::int64_t> killed;
  co_await f.client.exec(kill, killed);
  BOOST_TEST_REQUIRE(std::get<0>(killed).value() == 1);
  BOOST_TEST_REQUIRE(co_await eventually([&] { return sub.stats().resubscriptions == 1; }, 10s));
  redis::request after;
  after.push("PUBLISH", "news", "after the reconnect");
  co_await f.client.exec(after);
  const auto last = co_await sub.receive();
  BOOST_TEST(last.payload == "after the reconnect");
  metrics.render();
  BOOST_TEST(metrics.value("corvo_pubsub_resubscriptions_total", l) == 1);
  BOOST_TEST(metrics.value("corvo_pubsub_received_total", l) == 8);
  BOOST_TEST(metrics.value("corvo_pubsub_delivered_total", l) == 6);
  co_await scrape_and_check(f, metrics, "pubsub");
  group.cancel();
  co_await group.join();
}

// A fresh client: 5 PINGs succeed (the handshake is not counted); a client whose server
// does not answer: a request that must not wait for a connection fails, 1 error.
asio::awaitable<void> redis_counts(fixture& f) {
  auto ex = co_await asio::this_coro::executor;
  ops::registry metrics;
  redis::client good(ex, redis::client_config::from_url(f.server.url()));
  const auto bad_config = redis::client_config::from_url("redis://127.0.0.1:1");
  redis::client bad(ex, bad_config);
  ops::watch_redis(metrics, good, "good");
  ops::watch_redis(metrics, bad, "bad");
  corvo::task_group group(ex);
  co_await group.spawn(good.run());
  co_await group.spawn(bad.run());
  for (int i = 0; i < 5; ++i) {
    redis::request ping;
    ping.push("PING");
    co_await good.exec(ping);
  }
  redis::request::config no_wait;
  no_wait.fail_if_not_connected = true;
  redis::request refused(no_wait);
  refused.push("PING");
  BOOST_CHECK_THROW(co_await bad.exec(refused), boost::system::system_error);
  metrics.render();
  const ops::label_set good_label{{"client", "good"}}, bad_label{{"client", "bad"}};
  BOOST_TEST(metrics.value("corvo_redis_requests_total", good_label) == 5);
  BOOST_TEST(metrics.value("corvo_redis_request_errors_total", good_label) == 0);
  BOOST_TEST(metrics.value("corvo_redis_request_duration_seconds", good_label) == 5);
  BOOST_TEST(metrics.value("corvo_redis_connects_total", good_label) == 1);
  BOOST_TEST(metrics.value("corvo_redis_requests_total", bad_label) == 0);
  BOOST_TEST(metrics.value("corvo_redis_request_errors_total", bad_label) == 1);
  BOOST_TEST(metrics.value("corvo_redis_request_duration_seconds", bad_label) == 0);
  BOOST_TEST(metrics.value("corvo_redis_connects_total", bad_label) == 0);
  const auto text = co_await scrape_and_check(f, metrics, "redis");
  BOOST_TEST(text.find("corvo_redis_request_duration_seconds_count{client=\"good\"} 5\n") !=
                 std::string::npos,
             text);
  BOOST_TEST(
      text.find("corvo_redis_request_duration_seconds_bucket{client=\"good\",le=\"+Inf\"} 5\n") !=
          std::string::npos,
      text);
  // A reset (health::reset_when_down's call) is counted; a client not connected resets nothing.
  good.reset_connections("test");
  bad.reset_connections("test");
  metrics.render();
  BOOST_TEST(metrics.value("corvo_redis_resets_total", good_label) == 1);
  BOOST_TEST(metrics.value("corvo_redis_resets_total", bad_label) == 0);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
    // the unreachable client's run() may end with its connection error
  }
}

asio::awaitable<void> workload(fixture& f) {
  co_await streams_and_queues(f);
  co_await pubsub_counts(f);
  co_await redis_counts(f);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_layers)

BOOST_AUTO_TEST_CASE(redis_stream_queue_and_pubsub_metrics_and_views_after_a_known_workload) {
  fixture f;
  corvo::test::run(f.ctx, workload(f), [&] { f.client.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
