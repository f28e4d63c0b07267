// Kafka client configuration: librdkafka properties from a corvo configuration section,
// role overrides, `embedded:N`, and errors that name the offending key. No broker needed.

#include <corvo/core/config.hpp>
#include <corvo/kafka/config.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
using kafka::client_role;

namespace {

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const corvo::config_error& e) {
    return std::string(e.key()) + " | " + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "no error";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_config)

BOOST_AUTO_TEST_CASE(properties_come_from_the_section_as_strings) {
  const auto cfg = corvo::config::from_string(R"({
    "kafka": {
      "bootstrap.servers": "b1:9092,b2:9092",
      "client.id": "billing",
      "socket.keepalive.enable": true,
      "message.max.bytes": 2000000,
      "debug": ["broker", "topic"],
      "producer": { "linger.ms": 1, "acks": "1" },
      "consumer": { "group.id": "billing-workers", "fetch": { "wait.max.ms": 5 } }
    }
  })");
  const auto config = kafka::client_config::from(cfg);
  BOOST_TEST(config.get("bootstrap.servers").value_or("") == "b1:9092,b2:9092");
  BOOST_TEST(config.get("socket.keepalive.enable").value_or("") == "true");
  BOOST_TEST(config.get("message.max.bytes").value_or("") == "2000000");
  BOOST_TEST(config.get("debug").value_or("") == "broker,topic");
  BOOST_TEST(config.get(client_role::producer, "linger.ms").value_or("") == "1");
  BOOST_TEST(config.get(client_role::consumer, "fetch.wait.max.ms").value_or("") == "5");
  BOOST_TEST(!config.get(client_role::producer, "group.id").has_value());

  const auto producer = config.properties(client_role::producer);
  BOOST_TEST(producer.at("acks") == "1");
  BOOST_TEST(producer.at("client.id") == "billing");
  BOOST_TEST(!producer.contains("group.id"));
  BOOST_TEST(!producer.contains("fetch.wait.max.ms"));
  const auto consumer = config.properties(client_role::consumer);
  BOOST_TEST(consumer.at("group.id") == "billing-workers");
  BOOST_TEST(!consumer.contains("linger.ms"));
  BOOST_TEST(!consumer.contains("acks"));

  BOOST_TEST(config.key_of(client_role::consumer, "group.id") == "kafka.consumer.group.id");
  BOOST_TEST(config.key_of(client_role::consumer, "client.id") == "kafka.client.id");
}

BOOST_AUTO_TEST_CASE(environment_overrides_replace_file_values) {
  auto cfg = corvo::config::from_string(R"({"kafka": {"bootstrap.servers": "file:9092"}})");
  std::vector<std::string> variables{"CORVO_KAFKA__BOOTSTRAP__SERVERS=env:9092",
                                     "CORVO_KAFKA__CONSUMER__GROUP__ID=from-env"};
  std::vector<char*> environment;
  for (auto& v : variables) {
    environment.push_back(v.data());
  }
  environment.push_back(nullptr);
  cfg.apply_environment("CORVO_", environment.data());
  const auto config = kafka::client_config::from(cfg);
  BOOST_TEST(config.get("bootstrap.servers").value_or("") == "env:9092");
  BOOST_TEST(config.get(client_role::consumer, "group.id").value_or("") == "from-env");
}

BOOST_AUTO_TEST_CASE(corvo_keys_never_reach_librdkafka) {
  kafka::client_config config("embedded:2");
  config.set("corvo.embedded.topics", "tasks:8, tasks.dlq ,audit:2");
  BOOST_TEST(!config.properties(client_role::producer).contains("corvo.embedded.topics"));
  BOOST_TEST((config.embedded_brokers() == std::optional<std::size_t>(2)));
  const auto topics = config.embedded_topics();
  BOOST_TEST_REQUIRE(topics.size() == 3U);
  BOOST_TEST(topics[0].first == "tasks");
  BOOST_TEST(topics[0].second == 8);
  BOOST_TEST(topics[1].first == "tasks.dlq");
  BOOST_TEST(topics[1].second == 1);
  BOOST_TEST(topics[2].second == 2);
}

BOOST_AUTO_TEST_CASE(embedded_bootstrap_forms) {
  BOOST_TEST(
      (kafka::client_config("embedded").embedded_brokers() == std::optional<std::size_t>(3)));
  BOOST_TEST(
      (kafka::client_config("embedded:1").embedded_brokers() == std::optional<std::size_t>(1)));
  BOOST_TEST(!kafka::client_config("localhost:9092").embedded_brokers().has_value());
  BOOST_TEST(!kafka::client_config().embedded_brokers().has_value());
  for (const char* bad : {"embedded:", "embedded:0", "embedded:x", "embedded:65", "embedded:2x"}) {
    const auto message = what_of([&] { (void)kafka::client_config(bad).embedded_brokers(); });
    BOOST_TEST(message.find("bootstrap.servers") != std::string::npos, message);
  }
  kafka::client_config topics("embedded:1");
  topics.set("corvo.embedded.topics", "orders:zero");
  const auto message = what_of([&] { (void)topics.embedded_topics(); });
  BOOST_TEST(message.find("corvo.embedded.topics") != std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(a_property_librdkafka_rejects_is_named_with_its_key) {
  asio::io_context ctx;
  const auto cfg = corvo::config::from_string(R"({
    "kafka": { "bootstrap.servers": "127.0.0.1:1",
               "producer": { "linger.ms": "soon" },
               "consumer": { "group.id": "g", "no.such.property": 1 } } })");
  const auto config = kafka::client_config::from(cfg);

  const auto producer_error = what_of([&] { kafka::producer p(ctx.get_executor(), config); });
  BOOST_TEST(producer_error.rfind("kafka.producer.linger.ms | ", 0) == 0U, producer_error);
  BOOST_TEST(producer_error.find("soon") != std::string::npos, producer_error);

  const auto consumer_error = what_of([&] {
    kafka::consumer c(ctx.get_executor(), config, {.topics = {"t"}, .dead_letter_topic = ""});
  });
  BOOST_TEST(consumer_error.rfind("kafka.consumer.no.such.property | ", 0) == 0U, consumer_error);
  BOOST_TEST(consumer_error.find("No such configuration property") != std::string::npos,
             consumer_error);
}

BOOST_AUTO_TEST_CASE(a_consumer_needs_a_group_id) {
  asio::io_context ctx;
  const auto config = kafka::client_config::from(
      corvo::config::from_string(R"({"kafka": {"bootstrap.servers": "127.0.0.1:1"}})"));
  const auto message = what_of([&] {
    kafka::consumer c(ctx.get_executor(), config, {.topics = {"t"}, .dead_letter_topic = ""});
  });
  BOOST_TEST(message.rfind("kafka.group.id | ", 0) == 0U, message);
}

BOOST_AUTO_TEST_CASE(valid_configuration_creates_clients_without_a_broker) {
  asio::io_context ctx;
  kafka::client_config config("127.0.0.1:1");
  config.set(client_role::consumer, "group.id", "g");
  kafka::producer p(ctx.get_executor(), config);
  BOOST_TEST(p.native_handle() != nullptr);
  kafka::consumer c(ctx.get_executor(), config, {.topics = {"t"}});
  BOOST_TEST(c.group_id() == "g");
  BOOST_TEST(c.assignment().empty());
}

BOOST_AUTO_TEST_CASE(error_codes_carry_librdkafka_names_and_texts) {
  const boost::system::error_code timed_out = kafka::error::msg_timed_out;
  BOOST_TEST(timed_out.category().name() == std::string("corvo.kafka"));
  BOOST_TEST(timed_out.message() == "Local: Message timed out");
  BOOST_TEST(kafka::error_name(timed_out) == "_MSG_TIMED_OUT");
  BOOST_TEST(kafka::error_name(kafka::make_error_code(10)) == "MSG_SIZE_TOO_LARGE");
  BOOST_TEST(kafka::make_error_code(-184) == boost::system::error_code(kafka::error::queue_full));
}

BOOST_AUTO_TEST_SUITE_END()
