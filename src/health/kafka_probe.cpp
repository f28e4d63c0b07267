#include <librdkafka/rdkafka.h>

#include <corvo/core/log.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/kafka/statistics.hpp>
#include <optional>

namespace corvo::health {

using steady = std::chrono::steady_clock;

struct kafka_probe::state {
  std::vector<std::string> topics;
  std::chrono::milliseconds interval{250};
  std::optional<std::string> latest;  // statistics JSON
  steady::time_point received{};
  steady::time_point created = steady::now();
  std::unique_ptr<kafka::producer> producer;
  std::vector<rd_kafka_topic_t*> handles;

  ~state() {
    for (auto* h : handles) {
      rd_kafka_topic_destroy(h);
    }
  }

  probe_result evaluate() const {
    const auto now = steady::now();
    const auto stale_after = 3 * interval + std::chrono::milliseconds(500);
    if (!latest) {
      return {status::down, "no Kafka statistics yet"};
    }
    if (now - received > stale_after) {
      return {
          status::down,
          "no Kafka statistics for " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::milliseconds>(now - received).count()) +
              " ms"};
    }
    std::size_t partitions = 0;
    std::size_t leaders_up = 0;
    for (const auto& topic : topics) {
      const auto h = kafka::health_of(*latest, topic);
      if (!h) {
        return {status::down, "topic " + topic + ": metadata not known"};
      }
      partitions += h->partitions;
      leaders_up += h->leaders_up;
    }
    if (leaders_up == partitions) {
      return {status::up, ""};
    }
    auto detail = std::to_string(leaders_up) + " of " + std::to_string(partitions) +
                  " partition leaders reachable";
    return {leaders_up == 0 ? status::down : status::degraded, std::move(detail)};
  }
};

namespace {

struct statistics_sink {
  std::weak_ptr<kafka_probe::state> state;
  void operator()(std::string_view json) const {
    if (const auto s = state.lock()) {
      s->latest.emplace(json);
      s->received = steady::now();
    }
  }
};

struct statistics_probe {
  std::weak_ptr<kafka_probe::state> state;
  asio::awaitable<probe_result> operator()() const {
    const auto s = state.lock();
    if (!s) {
      co_return probe_result{status::down, "kafka probe destroyed"};
    }
    co_return s->evaluate();
  }
};

}  // namespace

kafka_probe::kafka_probe(asio::any_io_executor executor, const kafka::client_config& config,
                         std::vector<std::string> topics,
                         std::chrono::milliseconds statistics_interval)
    : state_(std::make_shared<state>()) {
  state_->topics = std::move(topics);
  state_->interval = statistics_interval;
  auto cfg = config;
  cfg.set(kafka::client_role::producer, "statistics.interval.ms",
          std::to_string(statistics_interval.count()));
  // Notice a broker that comes back within about a second even though nothing is sent.
  cfg.set(kafka::client_role::producer, "enable.sparse.connections", "false");
  cfg.set(kafka::client_role::producer, "reconnect.backoff.max.ms", "1000");
  kafka::producer_options options;
  options.on_statistics = statistics_sink{state_};
  state_->producer = std::make_unique<kafka::producer>(executor, cfg, std::move(options));
  // A topic handle makes librdkafka fetch and report the topic's metadata.
  for (const auto& topic : state_->topics) {
    auto* h = rd_kafka_topic_new(state_->producer->native_handle(), topic.c_str(), nullptr);
    if (h == nullptr) {
      throw std::runtime_error("kafka_probe: cannot create a handle for topic " + topic);
    }
    state_->handles.push_back(h);
  }
}

kafka_probe::~kafka_probe() {
  // Topic handles go before the producer (its destructor joins librdkafka's threads).
  for (auto* h : state_->handles) {
    rd_kafka_topic_destroy(h);
  }
  state_->handles.clear();
  state_->producer.reset();
}

probe_fn kafka_probe::probe() {
  return statistics_probe{state_};
}

probe_result kafka_probe::evaluate() const {
  return state_->evaluate();
}

asio::awaitable<void> kafka_probe::close() {
  const auto s = state_;
  if (s->producer && !s->producer->closed()) {
    co_await s->producer->close(std::chrono::milliseconds(0));
  }
}

void kafka_probe::observe(std::string_view statistics_json) {
  statistics_sink{state_}(statistics_json);
}

}  // namespace corvo::health
