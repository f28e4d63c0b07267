// A message whose handler keeps failing holds its partition's offset back (it is handled
// again after a consumer restart) until it has failed max_attempts times; then it goes to
// the dead-letter topic with the reason and the partition moves on. Typed handlers send
// unknown types and undecodable payloads to the dead-letter topic at once.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <array>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/kafka/typed_handlers.hpp>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <support/kafka_committed.hpp>
#include <support/run_coroutine.hpp>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
namespace kafka = corvo::kafka;

namespace {

struct stored_message {
  std::int64_t offset = -1;
  std::optional<std::string> key;
  std::string value;
  std::map<std::string, std::string> headers;
};

// Reads partition 0 of `topic` from the start with a plain librdkafka consumer until
// `expected` messages arrived (or 30 s), then briefly for more. Blocking.
std::vector<stored_message> read_topic(const std::string& servers, const std::string& topic,
                                       std::size_t expected) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", servers.c_str(), err.data(), err.size());
  rd_kafka_conf_set(conf, "group.id", "reader", err.data(), err.size());
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err.data(), err.size());
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err.data(), err.size());
  BOOST_REQUIRE(rk != nullptr);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<stored_message> out;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  int quiet_polls = 0;
  while (std::chrono::steady_clock::now() < deadline &&
         (out.size() < expected || quiet_polls < 5)) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) {
      quiet_polls += out.size() >= expected ? 1 : 0;
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      stored_message s;
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
          s.headers[name] = value ? std::string(static_cast<const char*>(value), size) : "";
        }
      }
      out.push_back(std::move(s));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

// The offset `group` committed for partition 0 of `topic` (a blocking query).
std::int64_t committed(const std::string& servers, const std::string& group,
                       const std::string& topic) {
  const auto out = corvo::test::committed_offsets(servers, group, topic);
  BOOST_REQUIRE_EQUAL(out.size(), 1U);
  return out.begin()->second;
}

asio::awaitable<bool> wait_for(std::function<bool()> done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      co_return false;
    }
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return true;
}

struct run_outcome {
  bool done = false;
  std::exception_ptr failure;
};

// Runs `consumer` with `handler` until `until()` holds (or 60 s), then stops it and waits
// for run() to finish. Returns whether `until()` held.
asio::awaitable<bool> run_until(kafka::consumer& consumer, kafka::consumer::handler_type handler,
                                std::function<bool()> until) {
  auto outcome = std::make_shared<run_outcome>();
  // (No co_await in this expression: GCC 12 destroys its lambda temporary twice otherwise.)
  const auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, consumer.run(std::move(handler)), [outcome](std::exception_ptr e) {
    outcome->failure = e;
    outcome->done = true;
  });
  const bool reached = co_await wait_for(until, std::chrono::seconds{60});
  consumer.stop();
  const std::function<bool()> finished = [outcome] { return outcome->done; };
  co_await wait_for(finished, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(outcome->done);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
  co_return reached;
}

asio::awaitable<void> produce_all(kafka::client_config config, std::string topic,
                                  std::vector<std::string> values) {
  const auto executor = co_await asio::this_coro::executor;
  kafka::producer producer(executor, config);
  for (const auto& value : values) {
    // Everything named: GCC 12 rejects some braced lists in coroutines and destroys
    // temporaries of a co_await expression twice.
    std::vector<kafka::header> headers(1, kafka::header{"origin", std::string("test")});
    const std::string key = "key-" + value.substr(0, 2);
    co_await producer.send(topic, key, value, std::move(headers));
  }
  co_await producer.close();
}

kafka::client_config base_config(const kafka::embedded_cluster& cluster, const std::string& group) {
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", group);
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::producer, "linger.ms", "1");
  return config;
}

// --- a handler that fails on one message ------------------------------------------------

struct attempts_log {
  std::vector<std::string> calls;  // values, in call order
  std::vector<std::string> succeeded;
  int failures_of_poison = 0;
};

asio::awaitable<void> fail_on_poison(std::shared_ptr<attempts_log> log, std::string value) {
  log->calls.push_back(value);
  if (value == "m2") {
    ++log->failures_of_poison;
    throw std::runtime_error("boom: cannot charge card");
  }
  log->succeeded.push_back(value);
  co_return;
}

struct poison_handler {
  std::shared_ptr<attempts_log> log;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return fail_on_poison(log, std::string(m.value()));
  }
};

asio::awaitable<void> failing_handler_scenario(kafka::client_config config,
                                               std::shared_ptr<attempts_log> first,
                                               std::shared_ptr<attempts_log> second,
                                               std::string servers) {
  const auto executor = co_await asio::this_coro::executor;
  std::vector<std::string> jobs;
  for (const char* job : {"m0", "m1", "m2", "m3", "m4"}) {
    jobs.emplace_back(job);
  }
  co_await produce_all(config, "jobs", std::move(jobs));

  // First consumer: m2 keeps failing; it gives up long before 100 attempts.
  {
    kafka::consumer consumer(executor, config,
                             {.topics = {"jobs"},
                              .max_attempts = 100,
                              .retry_backoff = {.initial = 20ms, .max = 20ms, .jitter = false},
                              .dead_letter_topic = "{topic}.dlq"});
    const std::function<bool()> failed_twice = [first] { return first->failures_of_poison >= 2; };
    kafka::consumer::handler_type handler = poison_handler{first};
    const bool reached = co_await run_until(consumer, std::move(handler), failed_twice);
    BOOST_TEST(reached);
  }
  BOOST_TEST(committed(servers, "billing", "jobs") == 2);  // m2 not passed

  // Restart with max_attempts = 3: m2 comes back first, fails 3 times, is dead-lettered,
  // and m3, m4 follow.
  kafka::consumer consumer(executor, config,
                           {.topics = {"jobs"},
                            .max_attempts = 3,
                            .retry_backoff = {.initial = 10ms, .max = 10ms, .jitter = false},
                            .dead_letter_topic = "{topic}.dlq"});
  const std::function<bool()> done = [second] { return second->succeeded.size() >= 2; };
  kafka::consumer::handler_type handler = poison_handler{second};
  const bool reached = co_await run_until(consumer, std::move(handler), done);
  BOOST_TEST(reached);
  const auto stats = consumer.stats();
  BOOST_TEST(stats.dead_lettered == 1U);
  BOOST_TEST(stats.failed_attempts == 3U);
}

// --- typed handlers -------------------------------------------------------------------

struct order_created {
  std::string id;
  int amount = 0;
};

order_created tag_invoke(json::value_to_tag<order_created>, const json::value& v) {
  const auto& object = v.as_object();
  return {json::value_to<std::string>(object.at("id")), json::value_to<int>(object.at("amount"))};
}

struct orders_seen {
  std::vector<std::string> ids;
};

asio::awaitable<void> book(std::shared_ptr<orders_seen> seen, order_created order) {
  seen->ids.push_back(order.id + "=" + std::to_string(order.amount));
  co_return;
}

struct book_order {
  std::shared_ptr<orders_seen> seen;
  asio::awaitable<void> operator()(order_created order, const kafka::message&) const {
    return book(seen, std::move(order));
  }
};

// (Outside the coroutine: GCC 12 rejects some braced lists of string literals inside one.)
std::vector<std::string> order_messages() {
  return {R"({"type":"order.created","id":"o1","amount":5})",
          R"({"type":"order.teleported","id":"o9"})",
          R"({not json)",
          R"({"type":"order.created","id":7,"amount":1})",
          R"(["type","order.created"])",
          R"({"type":"order.created","id":"o2","amount":12})"};
}

asio::awaitable<void> typed_scenario(kafka::client_config config,
                                     std::shared_ptr<orders_seen> seen) {
  std::vector<std::string> orders = order_messages();
  co_await produce_all(config, "orders", std::move(orders));
  kafka::typed_handlers handlers;
  handlers.on<order_created>("order.created", book_order{seen});
  kafka::consumer_options options;
  options.topics.emplace_back("orders");
  options.max_attempts = 5;
  options.retry_backoff = {.initial = 10ms, .max = 10ms};
  options.dead_letter_topic = "orders.dlq";
  const auto executor = co_await asio::this_coro::executor;
  kafka::consumer consumer(executor, config, std::move(options));
  const std::function<bool()> done = [seen, &consumer] {
    return seen->ids.size() >= 2 && consumer.stats().dead_lettered >= 4;
  };
  kafka::consumer::handler_type handler = handlers;
  const bool reached = co_await run_until(consumer, std::move(handler), done);
  BOOST_TEST(reached);
  BOOST_TEST(consumer.stats().failed_attempts == 4U);  // one each: none was retried
}

// --- cancelled while the dead-letter send is in flight ----------------------------------

struct cancel_log {
  std::vector<std::string> calls;  // values, in call order, over both runs
  bool cancel_on_poison = true;    // first run only
};

// Fails permanently on "m1". In the first run it posts the cancellation of run() first: the
// post runs once the consumer has handed the dead-letter message to its producer and waits
// for the delivery report (nothing in between suspends), which the dead-letter topic's slow
// broker holds back for 500 ms.
asio::awaitable<void> fail_permanently_on_m1(std::shared_ptr<cancel_log> log,
                                             std::shared_ptr<asio::cancellation_signal> cancel,
                                             std::string value) {
  log->calls.push_back(value);
  if (value == "m1") {
    if (log->cancel_on_poison) {
      const auto executor = co_await asio::this_coro::executor;
      asio::post(executor, [cancel] { cancel->emit(asio::cancellation_type::terminal); });
    }
    throw kafka::permanent_error("cannot parse m1", "decode_error");
  }
  co_return;
}

struct cancelling_handler {
  std::shared_ptr<cancel_log> log;
  std::shared_ptr<asio::cancellation_signal> cancel;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return fail_permanently_on_m1(log, cancel, std::string(m.value()));
  }
};

asio::awaitable<void> cancelled_dead_letter_scenario(kafka::client_config config,
                                                     std::shared_ptr<cancel_log> log) {
  const auto executor = co_await asio::this_coro::executor;
  std::vector<std::string> jobs;
  for (const char* job : {"m0", "m1", "m2"}) {
    jobs.emplace_back(job);
  }
  co_await produce_all(config, "jobs", std::move(jobs));

  // First run: cancelled (terminal) while m1's dead-letter send waits for its report; no
  // grace period for handlers, so the cancellation reaches the send at once.
  {
    kafka::consumer_options options;
    options.topics.emplace_back("jobs");
    options.dead_letter_topic = "{topic}.dlq";
    options.shutdown_timeout = 0ms;
    kafka::consumer consumer(executor, config, std::move(options));
    auto cancel = std::make_shared<asio::cancellation_signal>();
    auto outcome = std::make_shared<run_outcome>();
    asio::co_spawn(executor, consumer.run(cancelling_handler{log, cancel}),
                   asio::bind_cancellation_slot(cancel->slot(), [outcome](std::exception_ptr e) {
                     outcome->failure = e;
                     outcome->done = true;
                   }));
    const std::function<bool()> finished = [outcome] { return outcome->done; };
    const bool done = co_await wait_for(finished, std::chrono::seconds{60});
    BOOST_TEST_REQUIRE(done);
    BOOST_TEST(static_cast<bool>(outcome->failure));  // run() reports the cancellation
  }

  // Second run of the group: m2 must be all that is left.
  log->cancel_on_poison = false;
  kafka::consumer_options options;
  options.topics.emplace_back("jobs");
  options.dead_letter_topic = "{topic}.dlq";
  kafka::consumer consumer(executor, config, std::move(options));
  const std::function<bool()> m2_handled = [log] {
    return !log->calls.empty() && log->calls.back() == "m2";
  };
  kafka::consumer::handler_type handler =
      cancelling_handler{log, std::make_shared<asio::cancellation_signal>()};
  const bool reached = co_await run_until(consumer, std::move(handler), m2_handled);
  BOOST_TEST(reached);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_consumer_dead_letters)

BOOST_AUTO_TEST_CASE(failing_message_holds_its_offset_is_redelivered_then_dead_lettered) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("jobs", 1, 1);
  cluster.create_topic("jobs.dlq", 1, 1);
  auto first = std::make_shared<attempts_log>();
  auto second = std::make_shared<attempts_log>();
  asio::io_context ctx;
  corvo::test::run(ctx, failing_handler_scenario(base_config(cluster, "billing"), first, second,
                                                 cluster.bootstrap_servers()));

  // First run: m0 and m1 handled, m2 failed repeatedly, nothing after it was handled.
  BOOST_TEST((first->succeeded == std::vector<std::string>{"m0", "m1"}));
  BOOST_TEST(first->failures_of_poison >= 2);
  for (const auto& call : first->calls) {
    BOOST_TEST((call != "m3" && call != "m4"));
  }
  // After the restart m2 came first again: its offset had not been stored.
  BOOST_TEST_REQUIRE(!second->calls.empty());
  BOOST_TEST(second->calls.front() == "m2");
  BOOST_TEST(second->failures_of_poison == 3);
  BOOST_TEST((second->succeeded == std::vector<std::string>{"m3", "m4"}));
  BOOST_TEST(committed(cluster.bootstrap_servers(), "billing", "jobs") == 5);

  // m2 is on the dead-letter topic, unchanged, with why and where from.
  const auto dead = read_topic(cluster.bootstrap_servers(), "jobs.dlq", 1);
  BOOST_TEST_REQUIRE(dead.size() == 1U);
  BOOST_TEST(dead[0].value == "m2");
  BOOST_TEST(dead[0].key.value_or("<null>") == "key-m2");
  auto headers = dead[0].headers;
  BOOST_TEST(headers["origin"] == "test");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::reason)] == "boom: cannot charge card");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::kind)] == "handler_failed");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::attempts)] == "3");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::topic)] == "jobs");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::partition)] == "0");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::offset)] == "2");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::group)] == "billing");
}

BOOST_AUTO_TEST_CASE(unknown_types_and_bad_payloads_go_to_the_dead_letter_topic_with_reason) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("orders", 1, 1);
  cluster.create_topic("orders.dlq", 1, 1);
  auto seen = std::make_shared<orders_seen>();
  asio::io_context ctx;
  corvo::test::run(ctx, typed_scenario(base_config(cluster, "bookkeeping"), seen));

  BOOST_TEST((seen->ids == std::vector<std::string>{"o1=5", "o2=12"}));
  BOOST_TEST(committed(cluster.bootstrap_servers(), "bookkeeping", "orders") == 6);
  const auto dead = read_topic(cluster.bootstrap_servers(), "orders.dlq", 4);
  BOOST_TEST_REQUIRE(dead.size() == 4U);
  const auto kind = std::string(kafka::dead_letter_header::kind);
  const auto reason = std::string(kafka::dead_letter_header::reason);
  auto h0 = dead[0].headers;
  BOOST_TEST(h0[kind] == "unknown_type");
  BOOST_TEST(h0[reason].find("order.teleported") != std::string::npos, h0[reason]);
  BOOST_TEST(h0[std::string(kafka::dead_letter_header::attempts)] == "1");
  auto h1 = dead[1].headers;
  BOOST_TEST(dead[1].value == "{not json");
  BOOST_TEST(h1[kind] == "decode_error");
  BOOST_TEST(h1[reason].find("not valid JSON") != std::string::npos, h1[reason]);
  auto h2 = dead[2].headers;
  BOOST_TEST(h2[kind] == "decode_error");
  BOOST_TEST(h2[reason].find("order.created") != std::string::npos, h2[reason]);
  auto h3 = dead[3].headers;
  BOOST_TEST(h3[kind] == "decode_error");
  BOOST_TEST(h3[reason].find("not a JSON object") != std::string::npos, h3[reason]);
}

BOOST_AUTO_TEST_CASE(a_dead_letter_send_in_flight_when_cancelled_is_not_sent_again) {
  kafka::embedded_cluster cluster{2};
  cluster.create_topic("jobs", 1, 1);
  cluster.create_topic("jobs.dlq", 1, 1);
  // The group and "jobs" on broker 1; the dead-letter topic on broker 2, which answers
  // 500 ms late, so a dead-letter send is still in flight when the cancellation comes.
  auto* mock = cluster.native_handle();
  BOOST_TEST_REQUIRE(rd_kafka_mock_partition_set_leader(mock, "jobs", 0, 1) == 0);
  BOOST_TEST_REQUIRE(rd_kafka_mock_partition_set_leader(mock, "jobs.dlq", 0, 2) == 0);
  BOOST_TEST_REQUIRE(rd_kafka_mock_coordinator_set(mock, "group", "payroll", 1) == 0);
  BOOST_TEST_REQUIRE(rd_kafka_mock_broker_set_rtt(mock, 2, 500) == 0);
  auto log = std::make_shared<cancel_log>();
  asio::io_context ctx;
  corvo::test::run(ctx, cancelled_dead_letter_scenario(base_config(cluster, "payroll"), log));

  // m1 was handled once: the cancelled run stored its offset once the dead-letter send
  // completed, so the second run started at m2.
  BOOST_TEST((log->calls == std::vector<std::string>{"m0", "m1", "m2"}));
  BOOST_TEST(committed(cluster.bootstrap_servers(), "payroll", "jobs") == 3);
  const auto dead = read_topic(cluster.bootstrap_servers(), "jobs.dlq", 1);
  BOOST_TEST_REQUIRE(dead.size() == 1U);  // exactly once
  BOOST_TEST(dead[0].value == "m1");
  auto headers = dead[0].headers;
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::kind)] == "decode_error");
  BOOST_TEST(headers[std::string(kafka::dead_letter_header::offset)] == "1");
}

BOOST_AUTO_TEST_SUITE_END()
