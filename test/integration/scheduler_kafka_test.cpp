// The Kafka sink end to end (real redis-server, embedded Kafka): tasks published when due
// reach the consumer group's handlers on time; a consumer that dies mid-handler leaves the
// task to the next member of the group; while the brokers are down, tasks stay in Redis
// and run once they are back.
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/schedule/scheduler.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

#include <functional>
#include <map>

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace kafka = corvo::kafka;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::eventually;

namespace {

struct amount {
  long long cents = 0;
};

amount tag_invoke(json::value_to_tag<amount>, const json::value& v) {
  return {v.as_object().at("cents").as_int64()};
}

// Which tasks ran, when, and how often.
struct run_log {
  std::map<std::string, std::vector<time_point>> starts;
  std::map<std::string, time_point> due;
  std::size_t runs = 0;

  void record(const task& t) {
    starts[t.id].push_back(now());
    due[t.id] = t.due;
    ++runs;
  }
};

struct recording_handler {
  run_log* log;
  asio::awaitable<void> operator()(const claimed_task& t) const {
    log->record(t.work);
    co_return;
  }
};

struct world {
  corvo::test::redis_server server;
  kafka::embedded_cluster cluster{1};
  asio::io_context ctx;
  redis::client commands{ctx.get_executor(), redis::client_config::from_url(server.url())};

  explicit world(const std::string& topic, int partitions = 4) {
    cluster.create_topic(topic, partitions);
    cluster.create_topic(topic + ".dlq", 1);
    asio::co_spawn(ctx, commands.run(), [](std::exception_ptr) {});
  }

  kafka::client_config kafka_config() const {
    kafka::client_config c(cluster.bootstrap_servers());
    c.set(kafka::client_role::consumer, "group.id", "scheduler-test");
    c.set(kafka::client_role::consumer, "fetch.wait.max.ms", "5");
    c.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
    c.set(kafka::client_role::consumer, "heartbeat.interval.ms", "300");
    return c;
  }

  scheduler_options options(const std::string& topic, bool consume) const {
    scheduler_options o;
    o.provider = provider::redis;
    o.sink = sink_kind::kafka;
    o.redis = {.name_space = topic, .shards = 4};
    o.kafka = kafka_config();
    o.kafka_sink = {.topic = topic, .health_interval = 100ms};
    o.kafka_consume = consume;
    o.kafka_worker.consumer.shutdown_timeout = 200ms;
    o.kafka_worker.consumer.retry_backoff = {10ms, 50ms};
    o.dispatch.drain_timeout = 2s;
    return o;
  }

  std::unique_ptr<scheduler> make(const std::string& topic, bool consume) {
    return std::make_unique<scheduler>(ctx.get_executor(), options(topic, consume), &commands,
                                       redis::client_config::from_url(server.url()));
  }
};

asio::awaitable<void> run_scheduler(scheduler& s) { co_await s.run(); }
asio::awaitable<void> run_worker(kafka_worker& w) { co_await w.run(); }

asio::awaitable<void> stop(corvo::task_group& group) {
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

// The store's stats once nothing is scheduled or in flight (or after 5 s): a handler can
// start before the dispatcher has acknowledged the delivery report in Redis (acks are
// batched), so the last acks may still be on their way.
asio::awaitable<store_stats> settled_stats(scheduler& s) {
  auto st = co_await s.stats();
  for (int i = 0; i < 500 && st.scheduled + st.in_flight > 0; ++i) {
    co_await corvo::sleep_for(10ms);
    st = co_await s.stats();
  }
  co_return st;
}

task make_task(std::string id, std::string type, json::value payload, time_point due) {
  task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.payload = std::move(payload);
  t.due = due;
  return t;
}

json::value cents(long long n) {
  json::object o;
  o["cents"] = n;
  return o;
}

// ---- tasks reach the consumer group's handler, each once, never early --------------------

asio::awaitable<void> reach_handlers(world& w, scheduler& s, run_log& log) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  constexpr int count = 300;
  const auto start = now() + 3s;  // past the mock's first group join (about 3 s)
  for (int i = 0; i < count; ++i) {
    co_await s.schedule(make_task("pay-" + std::to_string(i), "pay", cents(i),
                                  start + std::chrono::milliseconds(i * 5)));
  }
  co_await s.schedule(make_task("mystery", "no.such.type", cents(1), start));
  co_await s.schedule(make_task("bad-payload", "pay", json::value("not an amount"), start));
  auto* worker = s.kafka_worker();
  const bool all = co_await eventually(
      [&] { return log.runs >= count && worker->consumer().stats().dead_lettered >= 2; }, 60s);
  co_await corvo::sleep_for(300ms);  // a duplicate would show up now
  const auto st = co_await settled_stats(s);
  co_await stop(group);

  BOOST_TEST_REQUIRE(all, "handled " << log.runs << " of " << count << ", dead-lettered "
                                     << worker->consumer().stats().dead_lettered);
  BOOST_TEST(log.starts.size() == std::size_t(count));
  for (const auto& [id, starts] : log.starts) {
    BOOST_TEST(starts.size() == 1u, id << " ran " << starts.size() << " times");
    BOOST_TEST((starts.front() >= log.due[id]), id << " ran before its due time");
  }
  BOOST_TEST(worker->consumer().stats().dead_lettered == 2u);
  BOOST_TEST(st.scheduled == 0u);
  BOOST_TEST(st.in_flight == 0u);
  BOOST_TEST(s.dispatch_stats().succeeded == std::uint64_t(count + 2));
}

}  // namespace

BOOST_AUTO_TEST_CASE(tasks_reach_the_consumer_handler_once_and_on_time) {
  world w("reach");
  auto s = w.make("reach", true);
  run_log log;
  s->handlers().on<amount>("pay", [&log](amount, const task& t) -> asio::awaitable<void> {
    log.record(t);
    co_return;
  });
  corvo::test::run(w.ctx, reach_handlers(w, *s, log), [&] { w.commands.cancel(); });
}

namespace {

// ---- a consumer that dies mid-handler: the next member of the group runs the task ---------

asio::awaitable<void> crash_and_redeliver(world& w, scheduler& s, handler_registry& handlers,
                                          run_log& first, run_log& second, bool& stuck) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group dispatching(ex);
  co_await dispatching.spawn(run_scheduler(s));
  auto options = w.options("crash", true).kafka_worker;
  options.topic = "crash";
  corvo::task_group consumers(ex);
  auto a = std::make_unique<kafka_worker>(ex, w.kafka_config(), handlers, options);
  co_await consumers.spawn(run_worker(*a));
  const auto due = now() + 200ms;
  for (int i = 0; i < 20; ++i) {
    co_await s.schedule(make_task("job-" + std::to_string(i), "job", cents(i), due));
  }
  co_await s.schedule(make_task("stuck", "job", cents(0), due));
  const bool a_stuck = co_await eventually([&] { return stuck; }, 30s);
  BOOST_TEST_REQUIRE(a_stuck, "the first consumer never got the stuck task");
  co_await stop(consumers);  // the handler of "stuck" is cut off: its offset is not stored
  a.reset();
  stuck = false;
  auto b = std::make_unique<kafka_worker>(ex, w.kafka_config(), handlers, options);
  co_await consumers.spawn(run_worker(*b));
  const auto all_ran = [&] {
    for (int i = 0; i < 20; ++i) {
      const auto id = "job-" + std::to_string(i);
      if (first.starts.count(id) + second.starts.count(id) == 0) return false;
    }
    return true;
  };
  const bool redelivered =
      co_await eventually([&] { return second.starts.count("stuck") > 0 && all_ran(); }, 30s);
  co_await stop(consumers);
  co_await stop(dispatching);
  BOOST_TEST(second.starts.count("stuck") == 1u,
             "the task the dead consumer held never reached the next one");
  BOOST_TEST(redelivered);
  for (int i = 0; i < 20; ++i) {
    const auto id = "job-" + std::to_string(i);
    BOOST_TEST(first.starts.count(id) + second.starts.count(id) >= 1u, id << " never ran");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_consumer_dying_mid_handler_redelivers_to_the_group) {
  world w("crash", 1);
  auto s = w.make("crash", false);
  run_log first, second;
  bool stuck = false;
  bool first_alive = true;
  handler_registry handlers;
  handlers.on_task("job", [&](const claimed_task& t) -> asio::awaitable<void> {
    if (!first_alive) {
      second.record(t.work);
      co_return;
    }
    first.record(t.work);
    if (t.work.id == "stuck") {
      stuck = true;
      first_alive = false;  // what runs from now on runs on the second consumer
      co_await corvo::sleep_for(1h);
    }
  });
  corvo::test::run(w.ctx, crash_and_redeliver(w, *s, handlers, first, second, stuck),
                   [&] { w.commands.cancel(); });
}

namespace {

// ---- brokers down: tasks wait in Redis, then run ------------------------------------------

asio::awaitable<void> hold_while_down(world& w, scheduler& s, run_log& log) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  auto* sink = s.kafka_sink();
  co_await s.schedule(make_task("warm-up", "job", cents(0), now()));
  const bool warm = co_await eventually([&] { return log.runs == 1; }, 30s);
  BOOST_TEST_REQUIRE(warm, "the warm-up task never ran");

  w.cluster.set_all_brokers_down();
  const bool paused = co_await eventually([&] { return !sink->available(); }, 10s);
  BOOST_TEST_REQUIRE(paused, "the sink never noticed the brokers were down");
  constexpr int count = 100;
  for (int i = 0; i < count; ++i) {
    co_await s.schedule(make_task("held-" + std::to_string(i), "job", cents(i), now()));
  }
  co_await corvo::sleep_for(2s);
  const auto held = co_await s.stats();
  BOOST_TEST(log.runs == 1u, "tasks ran while every broker was down");
  BOOST_TEST(held.scheduled + held.in_flight == std::uint64_t(count),
             "scheduled " << held.scheduled << " + in flight " << held.in_flight);
  // max_in_flight (500) would let the dispatcher claim all of them: none was claimed.
  BOOST_TEST(held.scheduled == std::uint64_t(count),
             "the dispatcher kept claiming while the sink was unavailable");

  w.cluster.set_all_brokers_up();
  const bool resumed = co_await eventually([&] { return sink->available(); }, 15s);
  const bool all = co_await eventually([&] { return log.runs >= count + 1; }, 60s);
  const auto after = co_await settled_stats(s);
  co_await stop(group);
  BOOST_TEST(resumed, "the sink never noticed the brokers were back");
  BOOST_TEST_REQUIRE(all, "only " << log.runs - 1 << " of " << count << " ran after recovery");
  BOOST_TEST(log.starts.size() == std::size_t(count + 1));
  BOOST_TEST(after.scheduled == 0u);
  BOOST_TEST(after.in_flight == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(brokers_down_hold_tasks_in_redis_until_they_are_back) {
  world w("held", 2);
  auto options = w.options("held", true);
  options.dispatch.max_in_flight = 500;
  auto s = std::make_unique<scheduler>(w.ctx.get_executor(), options, &w.commands,
                                       redis::client_config::from_url(w.server.url()));
  run_log log;
  s->handlers().on_task("job", recording_handler{&log});
  corvo::test::run(w.ctx, hold_while_down(w, *s, log), [&] { w.commands.cancel(); });
}

namespace {

// ---- run() again after a stop: a new producer and consumer; never two runs at once --------

asio::awaitable<void> run_twice(scheduler& s, run_log& log) {
  auto ex = co_await asio::this_coro::executor;
  for (int round = 0; round < 2; ++round) {
    corvo::task_group group(ex);
    co_await group.spawn(run_scheduler(s));
    const bool started = co_await eventually([&] { return s.running(); }, 10s);
    BOOST_TEST_REQUIRE(started, "run() did not start");
    if (round == 0) {
      bool refused = false;
      try {
        co_await s.run();
      } catch (const std::logic_error&) {
        refused = true;
      }
      BOOST_TEST(refused, "a second concurrent run() was accepted");
    }
    const auto id = "round-" + std::to_string(round);
    co_await s.schedule(make_task(id, "job", cents(round), now()));
    const bool ran = co_await eventually([&] { return log.starts.count(id) == 1; }, 30s);
    co_await stop(group);
    BOOST_TEST_REQUIRE(ran, id << " did not run");
  }
  BOOST_TEST(log.runs == 2u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_scheduler_runs_again_after_a_stop) {
  world w("again", 1);
  auto s = w.make("again", true);
  run_log log;
  s->handlers().on_task("job", recording_handler{&log});
  corvo::test::run(w.ctx, run_twice(*s, log), [&] { w.commands.cancel(); });
}

namespace {

// ---- a delivery error no retry can fix dead-letters at once --------------------------------

asio::awaitable<void> deliver_oversized(kafka_sink& out, std::string& reason) {
  claimed_task t;
  t.work = make_task("huge", "job", json::value(std::string(4000, 'x')), now());
  t.work.attempts = 1;
  try {
    co_await out.deliver(t);
  } catch (const permanent_error& e) {
    reason = e.what();
  }
  co_await out.close(std::chrono::seconds(1));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_message_kafka_refuses_is_a_permanent_error) {
  kafka::embedded_cluster cluster(1);
  cluster.create_topic("small", 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::producer, "message.max.bytes", "1000");
  asio::io_context ctx;
  kafka_sink out(ctx.get_executor(), config, {.topic = "small"});
  std::string reason;
  corvo::test::run(ctx, deliver_oversized(out, reason));
  BOOST_TEST(reason.find("MSG_SIZE_TOO_LARGE") != std::string::npos, "reason: " << reason);
}

namespace {

// ---- a handler past its run timeout is cancelled and counted as a failed attempt -----------

// Never returns on its own: it waits until cancelled, and records each start and each
// cancellation it saw.
struct hanging_handler {
  run_log* log;
  std::size_t* cancelled;
  asio::awaitable<void> operator()(const claimed_task& t) const {
    log->record(t.work);
    const auto ex = co_await asio::this_coro::executor;
    asio::steady_timer forever(ex, std::chrono::hours(1));
    boost::system::error_code ec;
    co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) {
      ++*cancelled;
    }
    throw boost::system::system_error(ec ? ec : asio::error::operation_aborted);
  }
};

asio::awaitable<void> hang_until_dead(scheduler& s, run_log& log, std::size_t& cancelled) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  auto hung = make_task("hung", "hang", cents(1), now() + 3s);  // after the first group join
  hung.timeout = 300ms;
  co_await s.schedule(std::move(hung));
  auto* worker = s.kafka_worker();
  const bool dead =
      co_await eventually([&] { return worker->consumer().stats().dead_lettered >= 1; }, 60s);
  const auto stats = worker->consumer().stats();
  co_await stop(group);
  BOOST_TEST_REQUIRE(dead, "not dead-lettered; runs " << log.runs);
  BOOST_TEST(log.starts["hung"].size() == 2u);  // max_attempts 2: two runs, then the DLQ
  BOOST_TEST(cancelled == 2u);                   // each run saw its cancellation
  BOOST_TEST(stats.failed_attempts == 2u);
  BOOST_TEST(stats.dead_lettered == 1u);
  BOOST_TEST(stats.handled == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_handler_past_its_timeout_is_cancelled_and_dead_lettered_after_its_attempts) {
  world w("hang", 1);
  auto options = w.options("hang", true);
  options.kafka_worker.consumer.max_attempts = 2;
  scheduler s(w.ctx.get_executor(), options, &w.commands,
              redis::client_config::from_url(w.server.url()));
  run_log log;
  std::size_t cancelled = 0;
  s.handlers().on_task("hang", hanging_handler{&log, &cancelled});
  corvo::test::run(w.ctx, hang_until_dead(s, log, cancelled), [&] { w.commands.cancel(); });
}
