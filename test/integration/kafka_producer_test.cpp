// corvo's Kafka producer against the embedded mock cluster: sends complete with the
// partition and offset of their delivery report, keep their order when the local queue is
// full, survive brokers going down, and close without losing what was sent.

#include <corvo/core/backoff.hpp>
#include <corvo/core/error.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>
#include <librdkafka/rdkafka.h>

#include <support/run_coroutine.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using corvo::kafka::client_config;
using corvo::kafka::delivery_report;
using corvo::kafka::embedded_cluster;
using corvo::kafka::producer;

namespace {

struct stored_message {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::optional<std::string> key;
  std::string value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

// Reads every partition of `topic` from the beginning with a plain librdkafka consumer
// (assign, no group) until `expected` messages arrived or 30 s passed. Blocking: call it
// outside the io_context.
std::vector<stored_message> read_topic(const embedded_cluster& cluster, const std::string& topic,
                                       int partitions, std::size_t expected) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] :
       std::map<std::string, std::string>{{"bootstrap.servers", cluster.bootstrap_servers()},
                                          {"group.id", "reader"},
                                          {"enable.auto.commit", "false"},
                                          {"fetch.wait.max.ms", "10"}}) {
    BOOST_REQUIRE(rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err.data(), err.size()) ==
                  RD_KAFKA_CONF_OK);
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err.data(), err.size());
  BOOST_REQUIRE_MESSAGE(rk != nullptr, err.data());
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<stored_message> out;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) {
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      stored_message s;
      s.partition = m->partition;
      s.offset = m->offset;
      if (m->key != nullptr) {
        s.key.emplace(static_cast<const char*>(m->key), m->key_len);
      }
      s.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        for (std::size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          s.headers.emplace_back(name, value ? std::optional<std::string>(std::string(
                                                   static_cast<const char*>(value), size))
                                             : std::nullopt);
        }
      }
      out.push_back(std::move(s));
    }
    rd_kafka_message_destroy(m);
  }
  // A short extra wait shows that nothing beyond `expected` is there.
  for (int i = 0; i < 5; ++i) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100)) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        stored_message s;
        s.partition = m->partition;
        s.offset = m->offset;
        s.value.assign(static_cast<const char*>(m->payload), m->len);
        out.push_back(std::move(s));
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

constexpr std::size_t send_window = 50;

client_config fast_config(const embedded_cluster& cluster) {
  client_config config(cluster.bootstrap_servers());
  config.set("linger.ms", "1");
  config.set("reconnect.backoff.ms", "10");
  config.set("reconnect.backoff.max.ms", "100");
  return config;
}

// The outcome of one send made with a callback token.
struct outcome {
  bool done = false;
  error_code ec;
  delivery_report report;
};

struct record_outcome {
  std::shared_ptr<std::vector<outcome>> outcomes;
  std::size_t index;
  void operator()(error_code ec, delivery_report report) const {
    (*outcomes)[index] = {true, ec, report};
  }
};

asio::awaitable<void> wait_until_done(const std::shared_ptr<std::vector<outcome>>& outcomes,
                                      std::chrono::steady_clock::duration limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  for (;;) {
    std::size_t done = 0;
    for (const auto& o : *outcomes) {
      done += o.done ? 1 : 0;
    }
    if (done == outcomes->size() || std::chrono::steady_clock::now() > deadline) {
      co_return;
    }
    timer.expires_after(5ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_producer)

BOOST_AUTO_TEST_CASE(send_completes_with_partition_and_offset_in_order) {
  embedded_cluster cluster{1};
  cluster.create_topic("orders", 1, 1);
  asio::io_context ctx;
  const auto reports = corvo::test::run(
      ctx, [](client_config config) -> asio::awaitable<std::vector<delivery_report>> {
        const auto executor = co_await asio::this_coro::executor;
        producer p(executor, config);
        std::vector<delivery_report> out;
        for (int i = 0; i < 10; ++i) {
          // (Named key: GCC 12 may destroy a temporary of a co_await expression twice.)
          const std::string key = "order-" + std::to_string(i);
          out.push_back(co_await p.send("orders", key, "created"));
        }
        co_await p.close();
        co_return out;
      }(fast_config(cluster)));
  BOOST_TEST_REQUIRE(reports.size() == 10U);
  for (int i = 0; i < 10; ++i) {
    BOOST_TEST(reports[i].partition == 0);
    BOOST_TEST(reports[i].offset == i);
  }
}

BOOST_AUTO_TEST_CASE(keys_values_and_headers_arrive_as_sent) {
  embedded_cluster cluster{1};
  cluster.create_topic("events", 1, 1);
  asio::io_context ctx;
  corvo::test::run(ctx, [](client_config config) -> asio::awaitable<void> {
    const auto executor = co_await asio::this_coro::executor;
    producer p(executor, config);
    std::vector<corvo::kafka::header> headers;
    headers.push_back({"trace", std::string("abc")});
    headers.push_back({"empty", std::string()});
    headers.push_back({"null", std::nullopt});
    co_await p.send("events", "k1", "with headers", std::move(headers));
    co_await p.send("events", std::nullopt, "null key");
    corvo::kafka::outgoing_message empty_key{
        .topic = "events", .key = "", .value = "empty key", .partition = 0};
    co_await p.send(std::move(empty_key));
    co_await p.close();
  }(fast_config(cluster)));

  const auto stored = read_topic(cluster, "events", 1, 3);
  BOOST_TEST_REQUIRE(stored.size() == 3U);
  BOOST_TEST(stored[0].key.value_or("<null>") == "k1");
  BOOST_TEST(stored[0].value == "with headers");
  BOOST_TEST_REQUIRE(stored[0].headers.size() == 3U);
  BOOST_TEST(stored[0].headers[0].first == "trace");
  BOOST_TEST(stored[0].headers[0].second.value_or("<null>") == "abc");
  BOOST_TEST(stored[0].headers[1].second.value_or("<null>") == "");
  BOOST_TEST(!stored[0].headers[2].second.has_value());
  BOOST_TEST(!stored[1].key.has_value());
  BOOST_TEST(stored[1].value == "null key");
  BOOST_TEST(stored[2].key.value_or("<null>") == "");
}

BOOST_AUTO_TEST_CASE(full_local_queue_suspends_senders_and_keeps_their_order) {
  embedded_cluster cluster{1};
  cluster.create_topic("bursts", 1, 1);
  constexpr std::size_t count = 500;
  auto outcomes = std::make_shared<std::vector<outcome>>(count);
  asio::io_context ctx;
  const auto stats = corvo::test::run(
      ctx,
      [](client_config config, std::shared_ptr<std::vector<outcome>> outcomes)
          -> asio::awaitable<corvo::kafka::producer_stats> {
        config.set(corvo::kafka::client_role::producer, "queue.buffering.max.messages", "8");
        const auto executor = co_await asio::this_coro::executor;
        producer p(executor, config);
        for (std::size_t i = 0; i < outcomes->size(); ++i) {
          p.async_send({.topic = "bursts", .key = "same-key", .value = std::to_string(i)},
                       record_outcome{outcomes, i});
        }
        const auto waiting = p.stats();
        co_await wait_until_done(outcomes, 60s);
        co_await p.close();
        co_return waiting;
      }(fast_config(cluster), outcomes));

  BOOST_TEST(stats.queue_full > 0U);  // the queue did fill up
  for (std::size_t i = 0; i < count; ++i) {
    const auto& o = (*outcomes)[i];
    BOOST_TEST_REQUIRE(o.done);
    BOOST_TEST_REQUIRE(!o.ec, o.ec.message());
    BOOST_TEST(o.report.offset == static_cast<std::int64_t>(i));  // send order kept
  }
}

BOOST_AUTO_TEST_CASE(wait_below_bounds_the_sends_in_flight) {
  embedded_cluster cluster{1};
  cluster.create_topic("metrics", 2, 1);
  constexpr std::size_t count = 2000;
  auto outcomes = std::make_shared<std::vector<outcome>>(count);
  asio::io_context ctx;
  const auto most_in_flight = corvo::test::run(
      ctx, [](client_config config,
              std::shared_ptr<std::vector<outcome>> outcomes) -> asio::awaitable<std::size_t> {
        const auto executor = co_await asio::this_coro::executor;
        producer p(executor, config);
        std::size_t most = 0;
        for (std::size_t i = 0; i < outcomes->size(); ++i) {
          if (p.in_flight() >= send_window) {
            co_await p.wait_below(send_window);
          }
          BOOST_TEST_REQUIRE(p.in_flight() < send_window);
          p.async_send({.topic = "metrics", .value = std::to_string(i)},
                       record_outcome{outcomes, i});
          most = std::max(most, p.in_flight());
        }
        co_await p.close();
        co_return most;
      }(fast_config(cluster), outcomes));
  BOOST_TEST(most_in_flight == send_window);
  for (const auto& o : *outcomes) {
    BOOST_TEST_REQUIRE(o.done);
    BOOST_TEST_REQUIRE(!o.ec, o.ec.message());
  }
}

BOOST_AUTO_TEST_CASE(brokers_down_during_production_sends_complete_once_up_none_lost) {
  embedded_cluster cluster{3};
  cluster.create_topic("payments", 4, 3);
  constexpr std::size_t count = 600;
  auto outcomes = std::make_shared<std::vector<outcome>>(count);
  asio::io_context ctx;
  corvo::test::run(ctx,
                   [](client_config config, std::shared_ptr<std::vector<outcome>> outcomes,
                      embedded_cluster* cluster) -> asio::awaitable<void> {
                     const auto executor = co_await asio::this_coro::executor;
                     producer p(executor, config);
                     asio::steady_timer timer(executor);
                     for (std::size_t i = 0; i < outcomes->size(); ++i) {
                       p.async_send({.topic = "payments",
                                     .key = "k" + std::to_string(i % 17),
                                     .value = "payment-" + std::to_string(i)},
                                    record_outcome{outcomes, i});
                       if (i % 50 == 49) {
                         timer.expires_after(10ms);
                         co_await timer.async_wait(asio::use_awaitable);
                       }
                       if (i == 200) {
                         cluster->set_all_brokers_down();
                       }
                       if (i == 450) {
                         // Sends made while the brokers are down wait in librdkafka's queue.
                         timer.expires_after(1500ms);
                         co_await timer.async_wait(asio::use_awaitable);
                         cluster->set_all_brokers_up();
                       }
                     }
                     co_await wait_until_done(outcomes, 60s);
                     co_await p.close();
                   }(fast_config(cluster), outcomes, &cluster));

  for (std::size_t i = 0; i < count; ++i) {
    BOOST_TEST_REQUIRE((*outcomes)[i].done);
    BOOST_TEST_REQUIRE(!(*outcomes)[i].ec, (*outcomes)[i].ec.message());
  }
  // Every message is in the topic exactly once (the idempotent producer's retries after
  // the outage leave no duplicates), each where its delivery report said.
  const auto stored = read_topic(cluster, "payments", 4, count);
  BOOST_TEST(stored.size() == count);
  std::set<std::string> values;
  std::set<std::pair<std::int32_t, std::int64_t>> positions;
  for (const auto& s : stored) {
    values.insert(s.value);
    positions.emplace(s.partition, s.offset);
  }
  BOOST_TEST(values.size() == count);
  for (const auto& o : *outcomes) {
    BOOST_TEST(positions.contains({o.report.partition, o.report.offset}));
  }
}

BOOST_AUTO_TEST_CASE(cancelled_send_waiting_for_space_is_never_produced) {
  embedded_cluster cluster{1};
  cluster.create_topic("tasks", 1, 1);
  cluster.set_all_brokers_down();
  auto outcomes = std::make_shared<std::vector<outcome>>(2);
  asio::io_context ctx;
  corvo::test::run(
      ctx,
      [](client_config config, std::shared_ptr<std::vector<outcome>> outcomes,
         embedded_cluster* cluster) -> asio::awaitable<void> {
        config.set("queue.buffering.max.messages", "1");
        const auto executor = co_await asio::this_coro::executor;
        producer p(executor, config);
        p.async_send({.topic = "tasks", .value = "first"}, record_outcome{outcomes, 0});
        asio::cancellation_signal cancel;
        p.async_send({.topic = "tasks", .value = "second"},
                     asio::bind_cancellation_slot(cancel.slot(), record_outcome{outcomes, 1}));
        BOOST_TEST(p.stats().waiting == 1U);
        cancel.emit(asio::cancellation_type::terminal);
        asio::steady_timer timer(executor, 50ms);
        co_await timer.async_wait(asio::use_awaitable);
        BOOST_TEST((*outcomes)[1].done);
        BOOST_TEST((*outcomes)[1].ec == error_code(asio::error::operation_aborted));
        BOOST_TEST(!(*outcomes)[0].done);
        cluster->set_all_brokers_up();
        co_await wait_until_done(outcomes, 30s);
        co_await p.close();
      }(fast_config(cluster), outcomes, &cluster));

  BOOST_TEST(!(*outcomes)[0].ec, (*outcomes)[0].ec.message());
  const auto stored = read_topic(cluster, "tasks", 1, 1);
  BOOST_TEST_REQUIRE(stored.size() == 1U);
  BOOST_TEST(stored[0].value == "first");
}

BOOST_AUTO_TEST_CASE(close_flushes_every_send_made_before_it) {
  embedded_cluster cluster{1};
  cluster.create_topic("audit", 2, 1);
  auto outcomes = std::make_shared<std::vector<outcome>>(1000);
  asio::io_context ctx;
  corvo::test::run(
      ctx,
      [](client_config config,
         std::shared_ptr<std::vector<outcome>> outcomes) -> asio::awaitable<void> {
        config.set("linger.ms", "50");
        const auto executor = co_await asio::this_coro::executor;
        producer p(executor, config);
        for (std::size_t i = 0; i < outcomes->size(); ++i) {
          p.async_send({.topic = "audit", .value = std::to_string(i)}, record_outcome{outcomes, i});
        }
        co_await p.close();
        // A send after close fails at once.
        error_code ec;
        try {
          co_await p.send("audit", std::nullopt, "late");
        } catch (const boost::system::system_error& e) {
          ec = e.code();
        }
        BOOST_TEST(ec == error_code(corvo::error::stopping));
      }(fast_config(cluster), outcomes));
  for (const auto& o : *outcomes) {
    BOOST_TEST_REQUIRE(o.done);
    BOOST_TEST_REQUIRE(!o.ec, o.ec.message());
  }
}

BOOST_AUTO_TEST_CASE(close_past_its_deadline_purges_and_reports_the_failures) {
  embedded_cluster cluster{1};
  cluster.create_topic("stuck", 1, 1);
  cluster.set_all_brokers_down();
  auto outcomes = std::make_shared<std::vector<outcome>>(5);
  asio::io_context ctx;
  corvo::test::run(ctx,
                   [](client_config config,
                      std::shared_ptr<std::vector<outcome>> outcomes) -> asio::awaitable<void> {
                     const auto executor = co_await asio::this_coro::executor;
                     producer p(executor, config);
                     for (std::size_t i = 0; i < outcomes->size(); ++i) {
                       p.async_send({.topic = "stuck", .value = "x"}, record_outcome{outcomes, i});
                     }
                     co_await p.close(200ms);
                     co_await wait_until_done(outcomes, 5s);
                   }(fast_config(cluster), outcomes));
  for (const auto& o : *outcomes) {
    BOOST_TEST_REQUIRE(o.done);
    BOOST_TEST((o.ec == error_code(corvo::kafka::error::purge_queue) ||
                o.ec == error_code(corvo::kafka::error::purge_inflight)),
               o.ec.message());
  }
}

BOOST_AUTO_TEST_CASE(destroying_a_producer_completes_open_sends_with_destroy) {
  embedded_cluster cluster{1};
  cluster.create_topic("gone", 1, 1);
  cluster.set_all_brokers_down();
  auto outcomes = std::make_shared<std::vector<outcome>>(3);
  asio::io_context ctx;
  corvo::test::run(ctx,
                   [](client_config config,
                      std::shared_ptr<std::vector<outcome>> outcomes) -> asio::awaitable<void> {
                     {
                       const auto executor = co_await asio::this_coro::executor;
                       producer p(executor, config);
                       for (std::size_t i = 0; i < outcomes->size(); ++i) {
                         p.async_send({.topic = "gone", .value = "x"}, record_outcome{outcomes, i});
                       }
                     }
                     co_await wait_until_done(outcomes, 5s);
                   }(fast_config(cluster), outcomes));
  for (const auto& o : *outcomes) {
    BOOST_TEST_REQUIRE(o.done);
    BOOST_TEST(o.ec == error_code(corvo::kafka::error::destroy), o.ec.message());
  }
}

BOOST_AUTO_TEST_SUITE_END()
