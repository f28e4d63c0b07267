// The Kafka calls docs/kafka.md shows, as a program that runs to the end by itself against
// the embedded (in-process mock) cluster, `kafka.bootstrap.servers = "embedded:1"`: it
// produces orders, consumes them with a plain handler and then with typed handlers (a
// second consumer group), and checks what arrived. Built and run against the installed
// package by the install.find_package test; docs_snippets_test checks that the doc quotes
// it verbatim.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/kafka/config.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/message.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/kafka/typed_handlers.hpp>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;

// [types]
struct order_created { std::string id; int amount; };
order_created tag_invoke(boost::json::value_to_tag<order_created>, const boost::json::value&);
// [/types]

order_created tag_invoke(boost::json::value_to_tag<order_created>, const boost::json::value& v) {
  return {boost::json::value_to<std::string>(v.at("id")),
          boost::json::value_to<int>(v.at("amount"))};
}

constexpr int orders_sent = 3;
int events_delivered = 0;

asio::awaitable<void> produce(asio::any_io_executor executor, const corvo::config& cfg) {
  const order_created order{"o-1", 30};
  const std::string id = order.id;
  const std::string payload = R"({"type": "order.created", "id": "o-1", "amount": 30})";
  const std::string trace_id = "trace-1";
  const std::string event = R"({"type": "page.viewed"})";
  const auto on_report = [](boost::system::error_code ec, corvo::kafka::delivery_report) {
    if (!ec)
      ++events_delivered;
  };
  // [producer]
  corvo::kafka::producer producer(executor, corvo::kafka::client_config::from(cfg));

  // Await the delivery report: partition and offset, or system_error with the Kafka error.
  auto report = co_await producer.send("orders", order.id, payload);
  // Headers, whole messages: named variables, not braced temporaries inside the co_await
  // (GCC 12 may destroy those twice; see README "Supported compilers").
  std::vector<corvo::kafka::header> headers{{"trace", trace_id}};
  co_await producer.send("orders", std::nullopt, payload, std::move(headers));
  corvo::kafka::outgoing_message message{
      .topic = "orders", .key = id, .value = payload, .partition = 3};
  co_await producer.send(std::move(message));

  // Completion-token form: void(error_code, delivery_report).
  producer.async_send({.topic = "events", .value = event}, on_report);

  // Bulk: callbacks, with back-pressure on the sender.
  if (producer.in_flight() >= 10'000) co_await producer.wait_below(10'000);

  co_await producer.close();   // stop accepting sends, flush (10 s), purge the rest
  // [/producer]
  std::cout << "first order at partition " << report.partition << ", offset " << report.offset
            << std::endl;
}

int orders_handled = 0;
asio::awaitable<void> handle_order(const corvo::kafka::message& m) {
  std::cout << "order on partition " << m.partition() << ": " << m.value() << std::endl;
  ++orders_handled;
  co_return;
}

asio::awaitable<void> consume(asio::any_io_executor executor,
                              const corvo::kafka::client_config& config) {
  // [consumer]
  corvo::kafka::consumer consumer(executor, config,
      {.topics = {"orders"}, .max_attempts = 5, .dead_letter_topic = "{topic}.dlq"});
  co_await consumer.run(handle_order);   // asio::awaitable<void>(const kafka::message&)
  // elsewhere: consumer.stop(), or cancel run() (terminal)
  // [/consumer]
}

int orders_booked = 0;
asio::awaitable<void> book_order(order_created order, const corvo::kafka::message&) {
  std::cout << "booked " << order.id << " (" << order.amount << ")" << std::endl;
  ++orders_booked;
  co_return;
}

asio::awaitable<void> consume_typed(asio::any_io_executor executor,
                                    const corvo::kafka::client_config& config) {
  corvo::kafka::consumer consumer(executor, config, {.topics = {"orders"}});
  // [typed]
  corvo::kafka::typed_handlers handlers;                      // {"type": "...", ...}
  handlers.on<order_created>("order.created", book_order);     // (order_created, const message&)
  co_await consumer.run(handlers);
  // [/typed]
}

// Runs a consumer until `handled` reached orders_sent, then cancels it (terminal), as a
// shutdown would.
asio::awaitable<void> run_until_handled(asio::awaitable<void> consumer_run, const int& handled) {
  corvo::task_group group(co_await asio::this_coro::executor);
  co_await group.spawn(std::move(consumer_run));
  while (handled < orders_sent) {
    co_await corvo::sleep_for(std::chrono::milliseconds(10));
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted)
      throw;
  }
}

asio::awaitable<void> app() {
  const auto executor = co_await asio::this_coro::executor;
  const auto cfg = corvo::config::from_string(R"({
    "kafka": {
      "bootstrap.servers": "embedded:1",
      "corvo.embedded.topics": ["orders:4", "orders.dlq", "events"],
      "producer": { "linger.ms": 1 },
      "consumer": { "group.id": "orders-app", "fetch.wait.max.ms": 10 } } })");
  co_await produce(executor, cfg);

  const auto config = corvo::kafka::client_config::from(cfg);
  co_await run_until_handled(consume(executor, config), orders_handled);
  // A second group reads the same orders from the beginning (auto.offset.reset=earliest).
  auto typed_config = config;
  typed_config.set(corvo::kafka::client_role::consumer, "group.id", "orders-typed");
  co_await run_until_handled(consume_typed(executor, typed_config), orders_booked);
  if (orders_handled != orders_sent || orders_booked != orders_sent || events_delivered != 1)
    throw std::runtime_error("unexpected counts: handled " + std::to_string(orders_handled) +
                             ", booked " + std::to_string(orders_booked) + ", events " +
                             std::to_string(events_delivered));
}

int main() {
  corvo::runtime rt;
  const auto result = rt.run(app());
  const bool ok = result == corvo::run_result::completed;
  std::cout << (ok ? "ok" : "FAILED") << " (" << corvo::to_string(result) << ")" << std::endl;
  return ok ? 0 : 1;
}
