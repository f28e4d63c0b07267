// Failover by cancellation for the Kafka side (issue 16): every broker of the embedded
// cluster goes down under a supervised Kafka worker (schedule::kafka_worker, a consumer
// group member) while the scheduler (redis provider, Kafka sink) runs beside it under the
// Redis dependency.
// - the Kafka probe (librdkafka statistics: partition leaders' broker state) says down, the
//   worker is cancelled and stops within stop_timeout (no overrun; the loop thread is
//   never held by the consumer's teardown), the scheduler keeps running: tasks scheduled
//   meanwhile stay in Redis (the sink is unavailable, nothing is claimed);
// - brokers back: the worker restarts (a new consumer rejoins the group) and every task,
//   before and during the outage, runs.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/health/supervise.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <iostream>
#include <set>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
namespace kafka = corvo::kafka;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using steady = std::chrono::steady_clock;

namespace {

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

// The longest gap between two ticks of a 10 ms timer on the loop: how long the loop thread
// was held by something (a blocking call on it).
struct stall_meter {
  steady::duration longest{};
  steady::time_point last = steady::now();
  void reset() {
    longest = {};
    last = steady::now();
  }
  steady::duration longest_stall() const { return longest; }
  asio::awaitable<void> run() {
    for (;;) {
      co_await corvo::sleep_for(10ms);
      const auto now = steady::now();
      longest = std::max(longest, now - last - 10ms);
      last = now;
    }
  }
};

struct recorder {
  std::set<std::string>* ids;
  asio::awaitable<void> operator()(const claimed_task& t) const {
    ids->insert(t.work.id);
    co_return;
  }
};

// A fresh worker (a new consumer that joins the group) for every start.
asio::awaitable<void> run_worker(kafka::client_config config, const handler_registry* handlers,
                                 kafka_worker_options options) {
  const auto ex = co_await asio::this_coro::executor;
  kafka_worker worker(ex, config, *handlers, options);
  co_await worker.run();
}

asio::awaitable<void> schedule_one(scheduler& s, std::string id) {
  boost::json::value payload;
  payload = boost::json::string_view(id);
  co_await s.schedule(id, "job", payload, now());
}

}  // namespace

BOOST_AUTO_TEST_CASE(kafka_brokers_down_stop_the_worker_and_back_resume_it) {
  corvo::test::redis_server server;
  kafka::embedded_cluster brokers{1};
  const std::string topic = "health-kafka";
  brokers.create_topic(topic, 2);
  brokers.create_topic(topic + ".dlq", 1);
  asio::io_context io;
  redis::client commands(io.get_executor(), redis::client_config::from_url(server.url()));

  kafka::client_config kc(brokers.bootstrap_servers());
  kc.set(kafka::client_role::consumer, "group.id", "health-test");
  kc.set(kafka::client_role::consumer, "fetch.wait.max.ms", "5");
  kc.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  kc.set(kafka::client_role::consumer, "heartbeat.interval.ms", "300");

  scheduler_options so;
  so.provider = provider::redis;
  so.sink = sink_kind::kafka;
  so.redis = {.name_space = topic, .shards = 2};
  so.kafka = kc;
  so.kafka_sink = {.topic = topic, .health_interval = 100ms};
  so.kafka_consume = false;  // the worker is its own supervised component
  so.dispatch.drain_timeout = 300ms;
  scheduler s(io.get_executor(), so, &commands, redis::client_config::from_url(server.url()));
  std::set<std::string> ran;
  s.handlers().on_task("job", recorder{&ran});

  kafka_worker_options wo;
  wo.topic = topic;
  wo.consumer.shutdown_timeout = 200ms;
  wo.consumer.close_timeout = 300ms;
  wo.consumer.retry_backoff = {10ms, 50ms};

  health::monitor m(io.get_executor());
  health::probe_options po;
  po.interval = 100ms;
  po.timeout = 250ms;
  const auto redis_dep = m.add("redis", health::redis_ping_probe(commands), po);
  health::kafka_probe kafka_health(io.get_executor(), kc, {topic}, 100ms);
  const auto kafka_dep = m.add("kafka", kafka_health.probe(), po);

  health::supervise_policy policy;
  policy.stop_timeout = 1s;
  policy.restart_backoff = {20ms, 500ms};
  health::supervision scheduler_sup({"scheduler", [&s] { return s.run(); }}, {redis_dep}, policy);
  const handler_registry* handlers = &s.handlers();
  health::supervision worker_sup(
      {"kafka-worker", [kc, handlers, wo] { return run_worker(kc, handlers, wo); }}, {kafka_dep},
      policy);

  stall_meter loop;
  background bg;
  bg.spawn(io, loop.run());
  bg.spawn(io, commands.run());
  bg.spawn(io, m.run());
  bg.spawn(io, scheduler_sup.run());
  bg.spawn(io, worker_sup.run());

  auto body = [&]() -> asio::awaitable<void> {
    co_await schedule_one(s, "warm-up");
    BOOST_TEST_REQUIRE(
        co_await corvo::test::eventually([&] { return ran.contains("warm-up"); }, 30s));
    BOOST_TEST((worker_sup.state() == health::supervision_state::running));

    const auto down_at = steady::now();
    loop.reset();
    brokers.set_all_brokers_down();
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
        [&] {
          return worker_sup.stats().stops == 1 &&
                 worker_sup.state() == health::supervision_state::waiting;
        },
        20s));
    const auto stopped_after = steady::now() - down_at;
    std::cout << "brokers down: the worker stopped after " << stopped_after / 1ms << " ms ("
              << m.report(kafka_dep).detail << ")\n";
    // The worker's stop meets stop_timeout without an overrun, and the loop thread is never
    // held meanwhile (the consumer's teardown with every broker down must not block it).
    std::cout << "  worker stop took " << worker_sup.stats().last_stop.count() << " ms, overruns "
              << worker_sup.stats().stop_overruns << "; longest loop stall since the outage "
              << loop.longest_stall() / 1ms << " ms\n";
    BOOST_TEST(worker_sup.stats().last_stop <= policy.stop_timeout);
    BOOST_TEST(worker_sup.stats().stop_overruns == 0u);
    BOOST_TEST(loop.longest_stall() <= 500ms);

    // Tasks scheduled meanwhile wait in Redis: the scheduler runs on, nothing is claimed.
    for (int i = 0; i < 20; ++i) {
      co_await schedule_one(s, "held-" + std::to_string(i));
    }
    co_await corvo::sleep_for(1s);
    BOOST_TEST((scheduler_sup.state() == health::supervision_state::running));
    BOOST_TEST(scheduler_sup.stats().starts == 1u);
    const auto held = co_await s.stats();
    BOOST_TEST(held.scheduled == 20u);
    BOOST_TEST(ran.size() == 1u);
    BOOST_TEST(
        (worker_sup.state() == health::supervision_state::waiting));  // no restart while down

    const auto up_at = steady::now();
    brokers.set_all_brokers_up();
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
        [&] { return worker_sup.state() == health::supervision_state::running; }, 30s));
    std::cout << "  worker running again " << (steady::now() - up_at) / 1ms
              << " ms after the brokers came back\n";
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return ran.size() == 21; }, 60s));
    const auto resumed_after = steady::now() - up_at;
    std::cout << "  every held task ran " << resumed_after / 1ms << " ms after\n";
    for (int i = 0; i < 20; ++i) {
      BOOST_TEST(ran.contains("held-" + std::to_string(i)));
    }
    BOOST_TEST(worker_sup.stats().starts == 2u);
  };
  corvo::test::run(io, body(), [&] {
    bg.stop();
    asio::co_spawn(io, kafka_health.close(), [](std::exception_ptr) {});
  });
}
