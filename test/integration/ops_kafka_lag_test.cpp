// Kafka consumer lag per partition, from librdkafka's statistics through
// consumer_options::on_statistics and ops::record_kafka_statistics, on the embedded cluster:
// 10 messages, the handler held at offset 4, so the group commits offset 4 and the lag is
// exactly 6; released, the lag falls to exactly 0. The producer and consumer counters too,
// and `promtool check metrics` on the rendered Kafka series.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/metrics.hpp>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <support/run_coroutine.hpp>
#include <support/temp_dir.hpp>

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
namespace ops = corvo::ops;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

struct shared_state {
  bool released = false;
  std::vector<std::int64_t> handled;
};

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(asio::use_awaitable);
}

// Offset 4 waits until released; the others are handled at once.
asio::awaitable<void> handle(std::shared_ptr<shared_state> st, std::int64_t offset) {
  while (offset == 4 && !st->released) {
    co_await sleep(10ms);
  }
  st->handled.push_back(offset);
}

struct holding_handler {
  std::shared_ptr<shared_state> st;
  asio::awaitable<void> operator()(const kafka::message& m) const { return handle(st, m.offset()); }
};

asio::awaitable<bool> wait_for(std::function<bool()> done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      co_return false;
    }
    co_await sleep(10ms);
  }
  co_return true;
}

struct ignore_report {
  void operator()(error_code, kafka::delivery_report) const {}
};

asio::awaitable<void> scenario(kafka::client_config config) {
  const auto executor = co_await asio::this_coro::executor;
  ops::registry metrics;
  auto st = std::make_shared<shared_state>();
  kafka::consumer_options options;
  options.topics = {"orders"};
  options.dead_letter_topic = "";
  options.on_statistics = [&metrics](std::string_view json) {
    ops::record_kafka_statistics(metrics, json, "billing");
  };
  kafka::consumer consumer(executor, config, options);
  ops::watch_kafka_consumer(metrics, consumer, "billing");
  bool run_done = false;
  asio::co_spawn(executor, consumer.run(holding_handler{st}),
                 [&run_done](std::exception_ptr) { run_done = true; });

  kafka::producer producer(executor, config);
  ops::watch_kafka_producer(metrics, producer, "orders-producer");
  for (int i = 0; i < 10; ++i) {
    const std::string value = "order-" + std::to_string(i);
    producer.async_send(kafka::outgoing_message{.topic = "orders", .value = value},
                        ignore_report{});
  }
  co_await producer.close(30s);

  const ops::label_set partition0{{"client", "billing"}, {"topic", "orders"}, {"partition", "0"}};
  const std::function<bool()> lag_is_6 = [&] {
    return metrics.value("corvo_kafka_consumer_lag", partition0) == 6;
  };
  BOOST_TEST(co_await wait_for(lag_is_6, 30s),
             "lag " << metrics.value("corvo_kafka_consumer_lag", partition0));
  BOOST_TEST((st->handled == std::vector<std::int64_t>{0, 1, 2, 3}));
  st->released = true;
  const std::function<bool()> lag_is_0 = [&] {
    return metrics.value("corvo_kafka_consumer_lag", partition0) == 0;
  };
  BOOST_TEST(co_await wait_for(lag_is_0, 30s),
             "lag " << metrics.value("corvo_kafka_consumer_lag", partition0));
  BOOST_TEST(st->handled.size() == 10u);
  metrics.render();
  BOOST_TEST(metrics.value("corvo_kafka_consumed_total", {{"client", "billing"}}) == 10);
  BOOST_TEST(metrics.value("corvo_kafka_handler_failures_total", {{"client", "billing"}}) == 0);
  BOOST_TEST(metrics.value("corvo_kafka_produced_total", {{"client", "orders-producer"}}) == 10);
  BOOST_TEST(
      metrics.value("corvo_kafka_delivery_failures_total", {{"client", "orders-producer"}}) == 0);
  // The exposition of these series (what /metrics serves) is well-formed for Prometheus.
  const corvo::test::temp_dir dir("ops_kafka_lag");
  std::ofstream(dir.path() / "scrape.txt") << metrics.render();
  const std::string command = "promtool check metrics < '" + (dir.path() / "scrape.txt").string() +
                              "' > '" + (dir.path() / "promtool.txt").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream report(dir.path() / "promtool.txt");
  std::stringstream said;
  said << report.rdbuf();
  BOOST_TEST(status == 0, "promtool: " << said.str());
  consumer.stop();
  const std::function<bool()> stopped = [&] { return run_done; };
  BOOST_TEST(co_await wait_for(stopped, 30s));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_kafka_lag)

BOOST_AUTO_TEST_CASE(consumer_lag_per_partition_from_statistics_is_exact) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("orders", 1, 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "billing");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::consumer, "statistics.interval.ms", "100");
  config.set(kafka::client_role::consumer, "auto.commit.interval.ms", "100");
  asio::io_context ctx;
  corvo::test::run(ctx, scenario(config));
}

BOOST_AUTO_TEST_SUITE_END()
