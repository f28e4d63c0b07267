// kafka-e2e: produce→handler latency through the embedded mock cluster with low-latency
// settings, corvo (producer + consumer group on one io_context) vs plain librdkafka (a C
// producer loop and a consumer thread blocking in rd_kafka_consumer_poll), same run.
//
//   scripts/bench kafka-e2e [--messages 5000] [--rate 1000] [--partitions 4]
//
// Settings on both sides: `linger.ms=0`, `fetch.wait.max.ms=5`, idempotent producer with
// acks=all, a consumer group with cooperative-sticky assignment. Messages are sent at a steady
// `--rate` per second after the group has its assignment and a warm-up; each carries its
// send time (steady clock), and the latency is taken when the handler (corvo) or the poll
// loop (C) gets it. Target (issue 5): p99 ≤ 10 ms.

#include "support/report.hpp"

#include <corvo/core/log.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/program_options.hpp>
#include <librdkafka/rdkafka.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::size_t messages = 5000;
  std::size_t rate = 1000;
  int partitions = 4;
  std::size_t warmup = 200;
};

struct result {
  corvo::bench::latency_summary latency;
  double per_s = 0;
  std::size_t received = 0;
};

const std::map<std::string, std::string> producer_settings{
    {"linger.ms", "0"}, {"enable.idempotence", "true"}, {"acks", "all"}};
const std::map<std::string, std::string> consumer_settings{
    {"fetch.wait.max.ms", "5"},
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "500"},
    {"partition.assignment.strategy", "cooperative-sticky"},
    {"auto.offset.reset", "earliest"}};

std::string stamp() {
  return std::to_string(clock_type::now().time_since_epoch().count());
}

std::int64_t age_of(std::string_view value) {
  std::int64_t sent = 0;
  std::from_chars(value.data(), value.data() + value.size(), sent);
  return clock_type::now().time_since_epoch().count() - sent;
}

// --- corvo ------------------------------------------------------------------------------

struct corvo_state {
  std::vector<std::int64_t> nanos;
  std::size_t received = 0;
  bool measuring = false;
};

asio::awaitable<void> note(corvo_state* state, std::int64_t age) {
  ++state->received;
  if (state->measuring) {
    state->nanos.push_back(age);
  }
  co_return;
}

struct latency_handler {
  corvo_state* state;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return note(state, age_of(m.value()));
  }
};

struct mark_done {
  std::shared_ptr<bool> done;
  void operator()(std::exception_ptr) const { *done = true; }
};

asio::awaitable<void> corvo_scenario(settings s, std::string servers, std::string topic,
                                     corvo_state* state, double* seconds) {
  const auto executor = co_await asio::this_coro::executor;
  kafka::client_config config(servers);
  for (const auto& [name, value] : producer_settings) {
    config.set(kafka::client_role::producer, name, value);
  }
  for (const auto& [name, value] : consumer_settings) {
    config.set(kafka::client_role::consumer, name, value);
  }
  config.set(kafka::client_role::consumer, "group.id", "e2e-corvo");
  kafka::consumer_options options;
  options.topics = {topic};
  options.dead_letter_topic = "";
  kafka::consumer consumer(executor, config, std::move(options));
  auto stopped = std::make_shared<bool>(false);
  asio::co_spawn(executor, consumer.run(latency_handler{state}), mark_done{stopped});
  kafka::producer producer(executor, config);
  asio::steady_timer timer(executor);

  while (consumer.assignment().size() < static_cast<std::size_t>(s.partitions)) {
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  for (std::size_t i = 0; i < s.warmup; ++i) {
    const std::string value = stamp();
    co_await producer.send(topic, std::nullopt, value);
  }
  while (state->received < s.warmup) {
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }

  state->measuring = true;
  const auto start = clock_type::now();
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / s.rate);
  for (std::size_t i = 0; i < s.messages; ++i) {
    timer.expires_at(start + interval * static_cast<long>(i));
    co_await timer.async_wait(asio::use_awaitable);
    const std::string value = stamp();
    producer.async_send(kafka::outgoing_message{.topic = topic, .value = value},
                        [](boost::system::error_code, kafka::delivery_report) {});
  }
  const auto deadline = clock_type::now() + 30s;
  while (state->nanos.size() < s.messages && clock_type::now() < deadline) {
    timer.expires_after(5ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  *seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  consumer.stop();
  co_await producer.close();
  while (!*stopped) {
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

result run_corvo(const settings& s, const std::string& servers, const std::string& topic) {
  asio::io_context ctx(1);
  corvo_state state;
  double seconds = 0;
  asio::co_spawn(ctx, corvo_scenario(s, servers, topic, &state, &seconds), asio::detached);
  ctx.run_for(std::chrono::seconds{120});
  result r;
  r.received = state.nanos.size();
  r.per_s = seconds > 0 ? static_cast<double>(r.received) / seconds : 0;
  r.latency = corvo::bench::summarize(state.nanos);
  return r;
}

// --- plain librdkafka -------------------------------------------------------------------

rd_kafka_t* make_c_client(rd_kafka_type_t type, const std::string& servers,
                          const std::map<std::string, std::string>& settings_map) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto all = settings_map;
  all["bootstrap.servers"] = servers;
  for (const auto& [name, value] : all) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err.data(), err.size()) !=
        RD_KAFKA_CONF_OK) {
      throw std::runtime_error(err.data());
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err.data(), err.size());
  if (rk == nullptr) {
    throw std::runtime_error(err.data());
  }
  return rk;
}

result run_c(const settings& s, const std::string& servers, const std::string& topic) {
  auto consumer_map = consumer_settings;
  consumer_map["group.id"] = "e2e-c";
  rd_kafka_t* consumer = make_c_client(RD_KAFKA_CONSUMER, servers, consumer_map);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);

  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> received{0};
  std::atomic<std::size_t> assigned{0};
  std::vector<std::int64_t> nanos;
  nanos.reserve(s.messages);
  // The consumer thread: the usual blocking poll loop (the rebalance is handled by the
  // default handling: librdkafka assigns when no rebalance callback is set).
  std::thread reader([&] {
    while (!stop) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
      if (m == nullptr) {
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const auto age = age_of(std::string_view(static_cast<const char*>(m->payload), m->len));
        ++received;
        if (measuring) {
          nanos.push_back(age);
        }
      }
      rd_kafka_message_destroy(m);
      if (assigned == 0) {
        rd_kafka_topic_partition_list_t* current = nullptr;
        if (rd_kafka_assignment(consumer, &current) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          assigned = static_cast<std::size_t>(current->cnt);
          rd_kafka_topic_partition_list_destroy(current);
        }
      }
    }
  });

  rd_kafka_t* producer = make_c_client(RD_KAFKA_PRODUCER, servers, producer_settings);
  auto send = [&] {
    const std::string value = stamp();
    rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
    rd_kafka_poll(producer, 0);
  };
  // Warm-up until the group has joined and messages flow.
  const auto warmup_deadline = clock_type::now() + 60s;
  while (received < s.warmup && clock_type::now() < warmup_deadline) {
    send();
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(200ms);
  measuring = true;
  const auto start = clock_type::now();
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / s.rate);
  for (std::size_t i = 0; i < s.messages; ++i) {
    std::this_thread::sleep_until(start + interval * static_cast<long>(i));
    send();
  }
  const auto deadline = clock_type::now() + 30s;
  while (clock_type::now() < deadline && received.load() < s.warmup + s.messages) {
    rd_kafka_poll(producer, 5);
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  stop = true;
  reader.join();
  rd_kafka_flush(producer, 5000);
  rd_kafka_destroy(producer);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);

  result r;
  r.received = nanos.size();
  r.per_s = static_cast<double>(r.received) / seconds;
  r.latency = corvo::bench::summarize(nanos);
  return r;
}

void emit(const std::string& impl, const settings& s, const result& r) {
  corvo::bench::emit({{"bench", "kafka-e2e"},
                      {"impl", impl},
                      {"n", r.received},
                      {"sent", s.messages},
                      {"rate", s.rate},
                      {"per_s", r.per_s},
                      {"p50_ms", r.latency.p50_ms},
                      {"p99_ms", r.latency.p99_ms},
                      {"max_ms", r.latency.max_ms}});
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  std::string impl = "all";
  po::options_description options("kafka-e2e");
  options.add_options()("help", "this text")(
      "messages", po::value(&s.messages)->default_value(s.messages), "messages measured")(
      "rate", po::value(&s.rate)->default_value(s.rate), "messages per second")(
      "partitions", po::value(&s.partitions)->default_value(s.partitions), "topic partitions")(
      "impl", po::value(&impl)->default_value(impl), "all, corvo or librdkafka-c");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (s.rate == 0) {
    throw std::invalid_argument("--rate must be positive");
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});

  kafka::embedded_cluster cluster(1);
  cluster.create_topic("e2e-corvo", s.partitions, 1);
  cluster.create_topic("e2e-c", s.partitions, 1);
  std::optional<result> corvo_result;
  std::optional<result> c_result;
  if (impl == "all" || impl == "corvo") {
    corvo_result = run_corvo(s, cluster.bootstrap_servers(), "e2e-corvo");
    emit("corvo", s, *corvo_result);
  }
  if (impl == "all" || impl == "librdkafka-c") {
    c_result = run_c(s, cluster.bootstrap_servers(), "e2e-c");
    emit("librdkafka-c", s, *c_result);
  }
  if (corvo_result && c_result) {
    corvo::bench::emit_ratio("kafka-e2e", "p99_ms", corvo_result->latency.p99_ms,
                             c_result->latency.p99_ms);
  }
  return 0;
}
