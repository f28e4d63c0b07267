// A process with the ops endpoint and a known workload, for the browser test
// (test/browser/dashboard_test.py) and the screenshots of docs/dashboard.md.
//
// Namespace "demo" (memory store, task events on): three tasks due in an hour ("report", one
// of them every hour), four "ok" tasks due now that succeed, one "flaky" task ("flaky-1")
// that fails its first try ("not yet") and succeeds its second, two "fail" tasks that fail
// permanently and are dead-lettered — "bad-1", whose payload and failure reason hold a
// <script> element, and "bad-2" — and "gone-1", scheduled and then cancelled. Once the
// workload has run, the dispatcher is stopped (the store and the endpoint stay), so a task
// replayed from the page stays due instead of running again: the expected counts are then
// scheduled 3, due 0, in flight 0, dead 2. Its 28 task events, in order of writing: the 11
// schedules (report-hourly, report-2, report-3, ok-1..4, flaky-1, bad-1, bad-2, gone-1), the
// cancel of gone-1, then the runs (started, then succeeded, failed or dead, per task).
// With --events-off the store writes no events (the page says so).
//
// With --redis-url URL (a redis-server the caller started), also a stream and a queue:
// stream "{demo}:orders" (group "billing"): four "order.created" entries handled and one
// "order.poison" entry, whose data holds an <img onerror> element, dead-lettered to
// "{demo}:orders:dlq" at its first failure; queue "jobs": three items handled and two
// "poison" items dead-lettered (permanent failure). Both consumers are stopped once that
// workload has run, so what is replayed from the page stays in the stream (lag 1) or the
// queue (depth). The expected state: stream length 5, group pending 0, lag 0, 1 dead letter;
// queue depth 0, processing 0, dead 2.
//
// Options: --port P (0: a free one), --token T (bearer token; also allows --address 0.0.0.0),
// --rate-limit, --rate-burst, --max-request-bytes (server_options), --redis-url URL.
// Standard output: `ready <port>` once the workload has run. Stops on SIGTERM/SIGINT.

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/dashboard.hpp>
#include <corvo/ops/endpoints.hpp>
#include <corvo/ops/server.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/stream/admin.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <corvo/stream/producer.hpp>
#include <iostream>
#include <memory>
#include <optional>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace schedule = corvo::schedule;
namespace ops = corvo::ops;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
namespace queue = corvo::queue;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> succeed(const schedule::claimed_task&) {
  co_return;
}

asio::awaitable<void> fail(const schedule::claimed_task& t) {
  if (t.work.id == "bad-1") {
    throw schedule::permanent_error("refused task bad-1: <script>window.__corvo_xss = 3</script>");
  }
  throw schedule::permanent_error("refused task " + t.work.id);
  co_return;
}

// Fails the first try, succeeds the second.
asio::awaitable<void> flaky(const schedule::claimed_task& t) {
  if (t.work.attempts < 2) {
    throw std::runtime_error("not yet");
  }
  co_return;
}

asio::awaitable<void> add(schedule::scheduler& s, std::string id, std::string type,
                          std::string payload, schedule::time_point due,
                          schedule::recurrence repeat, std::uint32_t max_attempts = 1) {
  schedule::task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.payload = boost::json::parse(payload);
  t.due = due;
  t.max_attempts = max_attempts;
  t.repeat = std::move(repeat);
  if (max_attempts > 1) {
    t.retry = schedule::retry_backoff{std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                                      1.0, 0.0};
  }
  co_await s.schedule(std::move(t));
}

asio::awaitable<void> run_workload(schedule::scheduler& s) {
  auto later = schedule::now() + 1h;
  co_await add(s, "report-hourly", "report", R"({"kind":"hourly"})", later,
               schedule::interval{std::chrono::hours(1)});
  co_await add(s, "report-2", "report", R"({"kind":"once"})", later + 1s, {});
  co_await add(s, "report-3", "report", R"({"kind":"once"})", later + 2s, {});
  // Due a moment from now, so that every schedule (and the cancel) is written before the
  // first run starts: the order of the events is then known.
  const auto soon = schedule::now() + 200ms;
  for (int i = 1; i <= 4; ++i) {
    co_await add(s, "ok-" + std::to_string(i), "ok", R"({"n":)" + std::to_string(i) + "}", soon,
                 {});
  }
  co_await add(s, "flaky-1", "flaky", R"({"n":1})", soon, {}, 2);
  co_await add(s, "bad-1", "fail",
               R"({"note":"<script>window.__corvo_xss = 1</script><b>bold</b>"})", soon, {});
  co_await add(s, "bad-2", "fail", R"({"n":2})", soon, {});
  co_await add(s, "gone-1", "report", R"({"n":1})", later + 3s, {});
  co_await s.cancel("gone-1");
}

const std::string demo_stream = "{demo}:orders";

// The stream and queue of --redis-url, and their consumers (stopped once their workload ran).
struct redis_parts {
  redis::client client;
  stream::admin admin{client};
  stream::consumer orders;
  queue::reliable_queue jobs;

  static stream::consumer_options orders_options() {
    stream::consumer_options o;
    o.group = "billing";
    o.consumer = "worker-1";
    o.streams = {demo_stream};
    o.block = 100ms;
    o.max_deliveries = 1;
    o.drain_timeout = 2s;
    return o;
  }

  static queue::queue_options jobs_options() {
    queue::queue_options o;
    o.name = "jobs";
    o.consumer = "c1";
    o.block_timeout = 100ms;
    o.drain_timeout = 2s;
    return o;
  }

  static asio::awaitable<void> handle_order(const stream::entry& e) {
    if (e.field("type") == "order.poison") {
      throw std::runtime_error("payment refused for " + e.id);
    }
    co_return;
  }

  static asio::awaitable<void> handle_job(const queue::item& it) {
    if (it.body.starts_with("poison")) {
      throw queue::permanent_error("cannot handle " + it.body);
    }
    co_return;
  }

  redis_parts(const asio::any_io_executor& ex, const std::string& url)
      : client(ex, redis::client_config::from_url(url)),
        orders(client, orders_options()),
        jobs(client, jobs_options(), handle_job) {}
};

// Runs `part` until `done()`, then cancels it and waits for its end.
template <class Run, class Done>
asio::awaitable<void> run_until(Run run, Done done) {
  auto ex = co_await asio::this_coro::executor;
  auto stop = std::make_shared<asio::cancellation_signal>();
  auto ended = std::make_shared<bool>(false);
  asio::co_spawn(
      ex, std::move(run),
      asio::bind_cancellation_slot(stop->slot(), [ended](std::exception_ptr) { *ended = true; }));
  asio::steady_timer poll(ex);
  while (!done()) {
    poll.expires_after(10ms);
    co_await poll.async_wait(asio::use_awaitable);
  }
  stop->emit(asio::cancellation_type::terminal);
  while (!*ended) {
    poll.expires_after(10ms);
    co_await poll.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> run_redis_workload(redis_parts& r) {
  stream::producer out(r.client);
  for (int i = 1; i <= 4; ++i) {
    auto fields = stream::producer::typed_fields(
        "order.created", R"({"id":"o)" + std::to_string(i) + R"("})", "", {});
    co_await out.append_fields(demo_stream, std::move(fields));
  }
  auto poison = stream::producer::typed_fields(
      "order.poison", R"({"id":"p1","note":"<img src=x onerror="window.__corvo_xss=2">"})", "", {});
  co_await out.append_fields(demo_stream, std::move(poison));
  stream::consumer::handler orders = redis_parts::handle_order;
  co_await run_until(r.orders.run(orders), [&r] {
    return r.orders.stats().acked == 4 && r.orders.stats().dead_lettered == 1;
  });

  queue::producer jobs(r.client, "jobs");
  for (const char* body : {"job-1", "poison-a", "job-2", "poison-b", "job-3"}) {
    co_await jobs.push_raw(body);
  }
  co_await run_until(r.jobs.run(), [&r] {
    return r.jobs.stats().succeeded == 3 && r.jobs.stats().dead_lettered == 2;
  });
}

asio::awaitable<void> serve(schedule::scheduler& s, ops::server& http,
                            corvo::health::monitor& monitor, redis_parts* extra) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group services(ex);
  co_await services.spawn(http.run());
  co_await services.spawn(monitor.run());
  if (extra != nullptr) {
    co_await services.spawn(extra->client.run());
    co_await run_redis_workload(*extra);
  }
  {
    corvo::task_group dispatch(ex);
    co_await dispatch.spawn(s.run());
    co_await run_workload(s);
    asio::steady_timer poll(ex);
    while (s.dispatch_stats().succeeded < 5 || s.dispatch_stats().dead_lettered < 2) {
      poll.expires_after(10ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
    dispatch.cancel();  // the store stays; replayed tasks stay due
    try {
      co_await dispatch.join();
    } catch (...) {
    }
  }
  std::cout << "ready " << http.local_endpoint().port() << std::endl;
  co_await services.join();
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("ops_demo");
  desc.add_options()("port", po::value<unsigned short>()->default_value(0), "port")(
      "address", po::value<std::string>()->default_value("127.0.0.1"), "address")(
      "token", po::value<std::string>()->default_value(""), "bearer token")(
      "rate-limit", po::value<double>()->default_value(100), "requests per second")(
      "rate-burst", po::value<double>()->default_value(200), "burst")(
      "max-request-bytes", po::value<std::size_t>()->default_value(65536), "largest body")(
      "redis-url", po::value<std::string>()->default_value(""), "stream and queue workload")(
      "events-off", "write no task events");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  corvo::runtime rt;
  schedule::scheduler_options options;
  options.memory_shards = 2;
  options.events.enabled = vm.count("events-off") == 0;
  options.events.source = "ops-demo";
  schedule::scheduler s(rt.get_executor(), options);
  s.handlers().on_task("ok", succeed);
  s.handlers().on_task("report", succeed);
  s.handlers().on_task("fail", fail);
  s.handlers().on_task("flaky", flaky);

  corvo::health::monitor monitor(rt.get_executor());
  monitor.add("store",
              corvo::health::probe_from([]() -> asio::awaitable<bool> { co_return true; }));

  ops::registry metrics;
  ops::watch_scheduler(metrics, s, "demo");
  ops::watch_health(metrics, monitor);
  ops::dashboard board;
  board.add_namespace("demo", s);
  std::unique_ptr<redis_parts> extra;
  if (const auto& url = vm["redis-url"].as<std::string>(); !url.empty()) {
    extra = std::make_unique<redis_parts>(rt.get_executor(), url);
    board.add_stream(extra->admin, demo_stream, stream::dead_letter_key(demo_stream));
    board.add_queue(extra->client, "jobs");
    ops::watch_redis(metrics, extra->client, "demo");
  }
  board.set_health(monitor);

  ops::server_options http_options;
  http_options.listen = {asio::ip::make_address(vm["address"].as<std::string>()),
                         vm["port"].as<unsigned short>()};
  http_options.token = vm["token"].as<std::string>();
  http_options.rate_limit = vm["rate-limit"].as<double>();
  http_options.rate_burst = vm["rate-burst"].as<double>();
  http_options.max_request_bytes = vm["max-request-bytes"].as<std::size_t>();
  ops::router routes(ops::policy_for(http_options));
  ops::add_metrics_route(routes, metrics);
  ops::add_health_routes(routes, monitor);
  board.install(routes);
  ops::server http(rt.get_executor(), http_options, routes);
  http.open();
  auto result = rt.run(serve(s, http, monitor, extra.get()));
  return corvo::exit_code(result);
}
