// W3C trace context end to end (core/trace.hpp): a traceparent given to schedule() reaches
// the task's handler through the Redis task record, directly and through the Kafka sink (as
// the record header "traceparent"); one given to a stream append() reaches the consumer's
// handler through the entry's field; one given to pub/sub publish() / spublish() reaches the
// subscriber's message::traceparent in front of the payload; all appear in the log records the
// handlers write with
// CORVO_LOG_TRACED, and in the framework's own records of a failed run. Invalid ones are
// refused before anything is stored.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <map>
#include <sstream>
#include <stdexcept>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/stream_fixture.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace kafka = corvo::kafka;
namespace stream = corvo::stream;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::eventually;

namespace {

const std::string trace_a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const std::string trace_b = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

// The JSON log records written while it lives (read them with records(), which ends the
// capture: the stream is not written by any thread after that).
class captured_log {
 public:
  captured_log() {
    corvo::log::init({.min_severity = corvo::log::severity::info,
                      .format = corvo::log::output_format::json,
                      .stream = &out_});
  }
  ~captured_log() { corvo::log::init({}); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  std::vector<json::object> records() {
    corvo::log::init({});
    std::vector<json::object> all;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) {
      all.push_back(json::parse(line).as_object());
    }
    return all;
  }

 private:
  std::ostringstream out_;
};

// The records of `channel` whose message is `msg` (or starts with it, when `prefix`).
std::vector<json::object> find(const std::vector<json::object>& records, std::string_view channel,
                               std::string_view msg, bool prefix = false) {
  std::vector<json::object> found;
  for (const auto& r : records) {
    const std::string_view m = r.at("msg").as_string();
    if (r.at("channel").as_string() == channel && (prefix ? m.starts_with(msg) : m == msg)) {
      found.push_back(r);
    }
  }
  return found;
}

std::string trace_of(const json::object& record) {
  const auto* tp = record.if_contains("traceparent");
  return tp == nullptr ? std::string("(none)") : std::string(tp->as_string());
}

task make_task(std::string id, std::string traceparent, time_point due) {
  task t;
  t.id = std::move(id);
  t.type = "charge";
  t.payload = json::object{{"cents", 5}};
  t.due = due;
  t.traceparent = std::move(traceparent);
  return t;
}

// What the handlers saw: the traceparent of each run, by task id.
struct seen_runs {
  std::map<std::string, std::vector<std::string>> traces;
  std::size_t runs = 0;
};

// Logs each run with its trace context; the first run of "flaky" fails.
struct charging_handler {
  seen_runs* seen;
  asio::awaitable<void> operator()(const claimed_task& t) const {
    seen->traces[t.work.id].push_back(t.work.traceparent);
    ++seen->runs;
    CORVO_LOG_TRACED(info, "billing", t.work.traceparent) << "charging " << t.work.id;
    if (t.work.id == "flaky" && t.work.attempts == 1) {
      throw std::runtime_error("card declined");
    }
    co_return;
  }
};

asio::awaitable<void> run_scheduler(scheduler& s) {
  co_await s.run();
}

asio::awaitable<void> stop(corvo::task_group& group) {
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

// Schedules the refused task; returns the error text (empty: it was accepted).
asio::awaitable<std::string> refused(scheduler& s, task t) {
  try {
    co_await s.schedule(std::move(t));
  } catch (const std::invalid_argument& e) {
    co_return e.what();
  }
  co_return std::string();
}

// ---- schedule() → Redis record → direct sink ---------------------------------------------

asio::awaitable<void> direct_runs(scheduler& s, seen_runs& seen) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const auto due = now();
  auto flaky = make_task("flaky", trace_b, due);
  flaky.retry = retry_backoff{10ms, 10ms, 1.0, 0.0};
  co_await s.schedule(make_task("traced", trace_a, due));
  co_await s.schedule(make_task("untraced", "", due));
  co_await s.schedule(std::move(flaky));
  co_await s.schedule(make_task("later", trace_a, due + 1h));
  const auto error = co_await refused(
      s, make_task("bad", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", due));
  const bool all = co_await eventually([&] { return seen.runs == 4; }, 20s);
  const auto later = co_await s.get("later");
  const auto bad = co_await s.get("bad");
  co_await stop(group);

  BOOST_TEST_REQUIRE(all, "runs: " << seen.runs);
  BOOST_TEST(error ==
             "task 'bad': invalid traceparent "
             "'00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01': the trace id must be "
             "lowercase hex digits");
  BOOST_TEST(!bad.has_value());
  BOOST_TEST_REQUIRE(later.has_value());
  BOOST_TEST(later->traceparent == trace_a);  // read back from the Redis record
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_traceparent_given_to_schedule_reaches_the_direct_handler_and_its_logs) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  scheduler_options o;
  o.provider = provider::redis;
  o.redis = {.name_space = "traced", .shards = 1};
  o.dispatch.drain_timeout = 2s;
  scheduler s(ctx.get_executor(), o, &conn, url);
  seen_runs seen;
  s.handlers().on_task("charge", charging_handler{&seen});
  captured_log log;
  corvo::test::run(ctx, direct_runs(s, seen), [&] { conn.cancel(); });
  const auto records = log.records();

  using traces = std::vector<std::string>;
  BOOST_TEST(seen.traces["traced"] == traces{trace_a}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["untraced"] == traces{""}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["flaky"] == (traces{trace_b, trace_b}), boost::test_tools::per_element());
  BOOST_TEST(seen.traces.size() == 3u);

  const auto traced = find(records, "billing", "charging traced");
  BOOST_TEST_REQUIRE(traced.size() == 1u);
  BOOST_TEST(trace_of(traced[0]) == trace_a);
  const auto untraced = find(records, "billing", "charging untraced");
  BOOST_TEST_REQUIRE(untraced.size() == 1u);
  BOOST_TEST(trace_of(untraced[0]) == "(none)");
  const auto flaky = find(records, "billing", "charging flaky");
  BOOST_TEST_REQUIRE(flaky.size() == 2u);
  BOOST_TEST(trace_of(flaky[0]) == trace_b);
  BOOST_TEST(trace_of(flaky[1]) == trace_b);
  // The dispatcher's own record of the failed run carries the task's trace context.
  const auto retry =
      find(records, "scheduler", "task flaky (charge) attempt 1 failed, will retry", true);
  BOOST_TEST_REQUIRE(retry.size() == 1u);
  BOOST_TEST(trace_of(retry[0]) == trace_b);
}

namespace {

// ---- schedule() → Redis record → Kafka sink (header) → kafka_worker ------------------------

asio::awaitable<void> kafka_runs(scheduler& s, seen_runs& seen) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const auto due = now() + 3s;  // past the mock's first group join (about 3 s)
  co_await s.schedule(make_task("traced", trace_a, due));
  co_await s.schedule(make_task("untraced", "", due));
  co_await s.schedule(make_task("other", trace_b, due));
  const bool all = co_await eventually([&] { return seen.runs == 3; }, 60s);
  co_await corvo::sleep_for(200ms);  // a duplicate would show up now
  co_await stop(group);
  BOOST_TEST_REQUIRE(all, "runs: " << seen.runs);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_traceparent_given_to_schedule_reaches_the_kafka_handler_as_a_header) {
  corvo::test::redis_server server;
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("traced", 2);
  cluster.create_topic("traced.dlq", 1);
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  scheduler_options o;
  o.provider = provider::redis;
  o.sink = sink_kind::kafka;
  o.redis = {.name_space = "traced-kafka", .shards = 1};
  o.kafka = kafka::client_config(cluster.bootstrap_servers());
  o.kafka.set(kafka::client_role::consumer, "group.id", "trace-test");
  o.kafka.set(kafka::client_role::consumer, "fetch.wait.max.ms", "5");
  o.kafka_sink = {.topic = "traced", .health_interval = 100ms};
  o.kafka_consume = true;
  o.kafka_worker.consumer.shutdown_timeout = 200ms;
  o.dispatch.drain_timeout = 2s;
  scheduler s(ctx.get_executor(), o, &conn, url);
  seen_runs seen;
  s.handlers().on_task("charge", charging_handler{&seen});
  captured_log log;
  corvo::test::run(ctx, kafka_runs(s, seen), [&] { conn.cancel(); });
  const auto records = log.records();

  using traces = std::vector<std::string>;
  BOOST_TEST(seen.traces["traced"] == traces{trace_a}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["untraced"] == traces{""}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["other"] == traces{trace_b}, boost::test_tools::per_element());
  const auto traced = find(records, "billing", "charging traced");
  BOOST_TEST_REQUIRE(traced.size() == 1u);
  BOOST_TEST(trace_of(traced[0]) == trace_a);
  const auto untraced = find(records, "billing", "charging untraced");
  BOOST_TEST_REQUIRE(untraced.size() == 1u);
  BOOST_TEST(trace_of(untraced[0]) == "(none)");
}

namespace {

// ---- stream append() → entry field → consumer handler --------------------------------------

asio::awaitable<void> stream_runs(redis::client& client, seen_runs& seen, std::string& refusal,
                                  std::int64_t& length) {
  stream::producer out(client);
  stream::event<corvo::test::order> traced;
  traced.type = "order.created";
  traced.data = corvo::test::order{"o1", 10};
  traced.extra = {{"origin", "shop"}};
  traced.traceparent = trace_a;
  co_await out.append("{orders}:traced", traced);
  stream::event<corvo::test::order> untraced;
  untraced.type = "order.created";
  untraced.data = corvo::test::order{"o2", 20};
  co_await out.append("{orders}:traced", untraced);
  stream::event<corvo::test::order> bad = traced;
  bad.data.id = "o3";
  bad.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
  try {
    co_await out.append("{orders}:traced", bad);
  } catch (const std::invalid_argument& e) {
    refusal = e.what();
  }

  auto ex = co_await asio::this_coro::executor;
  stream::consumer_options o;
  o.group = "billing";
  o.streams = {"{orders}:traced"};
  o.block = 100ms;
  o.drain_timeout = 2s;
  stream::consumer consumer(client, o);
  stream::consumer::handler handler = [&seen](const stream::entry& e) -> asio::awaitable<void> {
    const auto data = json::parse(*e.field("data"));
    const std::string id(data.at("id").as_string());
    seen.traces[id].push_back(std::string(e.traceparent()));
    ++seen.runs;
    CORVO_LOG_TRACED(info, "orders", e.traceparent()) << "booking " << id;
    co_return;
  };
  {
    corvo::test::background_consumer running(ex, consumer, handler);
    const bool both = co_await eventually([&] { return seen.runs == 2; }, 20s);
    running.stop();
    while (!running.done()) {
      co_await corvo::sleep_for(5ms);
    }
    BOOST_TEST_REQUIRE(both, "handled " << seen.runs);
  }
  redis::request req;
  req.push("XLEN", "{orders}:traced");
  redis::response<std::int64_t> resp;
  co_await client.exec(req, resp);
  length = std::get<0>(resp).value();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_traceparent_given_to_append_reaches_the_stream_handler_and_its_logs) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  seen_runs seen;
  std::string refusal;
  std::int64_t length = -1;
  captured_log log;
  corvo::test::run(ctx, stream_runs(client, seen, refusal, length), [&] { client.cancel(); });
  const auto records = log.records();

  using traces = std::vector<std::string>;
  BOOST_TEST(seen.traces["o1"] == traces{trace_a}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["o2"] == traces{""}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces.size() == 2u);
  BOOST_TEST(refusal ==
             "stream event: invalid traceparent "
             "'00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01': the parent id is all "
             "zeros");
  BOOST_TEST(length == 2);  // the refused event was not appended
  const auto o1 = find(records, "orders", "booking o1");
  BOOST_TEST_REQUIRE(o1.size() == 1u);
  BOOST_TEST(trace_of(o1[0]) == trace_a);
  const auto o2 = find(records, "orders", "booking o2");
  BOOST_TEST_REQUIRE(o2.size() == 1u);
  BOOST_TEST(trace_of(o2[0]) == "(none)");
}

namespace {

// Publishes "p1" with trace_a (PUBLISH) and "s1" with trace_b (SPUBLISH), "p2" without, and
// tries an invalid one; the receive loop logs each message with its trace, as a handler
// would.
asio::awaitable<void> pubsub_runs(redis::client& publisher, corvo::pubsub::subscriber& sub,
                                  seen_runs& seen, std::string& refusal) {
  std::vector<std::string> channels{"orders"};
  std::vector<std::string> shards{"{s}orders"};
  co_await sub.subscribe(channels);
  co_await sub.ssubscribe(shards);
  co_await corvo::pubsub::publish(publisher, "orders", "p1", trace_a);
  co_await corvo::pubsub::spublish(publisher, "{s}orders", "s1", trace_b);
  co_await corvo::pubsub::publish(publisher, "orders", "p2");
  try {
    co_await corvo::pubsub::publish(publisher, "orders", "bad",
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7");
  } catch (const std::invalid_argument& e) {
    refusal = e.what();
  }
  co_await corvo::pubsub::publish(publisher, "orders", "last");
  for (;;) {
    auto m = co_await sub.receive();
    seen.traces[m.payload].push_back(m.traceparent);
    CORVO_LOG_TRACED(info, "orders", m.traceparent) << "notified " << m.payload;
    if (m.payload == "last") {
      break;
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_traceparent_given_to_publish_reaches_the_subscriber_and_its_logs) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), [](std::exception_ptr) {});
  corvo::pubsub::subscriber sub(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, sub.run(), [](std::exception_ptr) {});
  seen_runs seen;
  std::string refusal;
  captured_log log;
  corvo::test::run(ctx, pubsub_runs(publisher, sub, seen, refusal), [&] {
    publisher.cancel();
    sub.cancel();
  });
  const auto records = log.records();

  using traces = std::vector<std::string>;
  BOOST_TEST(seen.traces["p1"] == traces{trace_a}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["s1"] == traces{trace_b}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces["p2"] == traces{""}, boost::test_tools::per_element());
  BOOST_TEST(seen.traces.size() == 4u);  // p1, s1, p2, last: the refused one was not sent
  BOOST_TEST(refusal.find("pubsub message: invalid traceparent") == 0u);
  const auto p1 = find(records, "orders", "notified p1");
  BOOST_TEST_REQUIRE(p1.size() == 1u);
  BOOST_TEST(trace_of(p1[0]) == trace_a);
  const auto s1 = find(records, "orders", "notified s1");
  BOOST_TEST_REQUIRE(s1.size() == 1u);
  BOOST_TEST(trace_of(s1[0]) == trace_b);
  const auto p2 = find(records, "orders", "notified p2");
  BOOST_TEST_REQUIRE(p2.size() == 1u);
  BOOST_TEST(trace_of(p2[0]) == "(none)");
}
