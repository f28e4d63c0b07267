#include <corvo/core/log.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/statistics.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/schedule/kafka_sink.hpp>
#include <corvo/schedule/task_message.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>


namespace corvo::schedule {
namespace {

// The sink's producer defaults (see the header comment), kept where the configuration is
// silent.
kafka::client_config with_sink_defaults(kafka::client_config config,
                                        const kafka_sink_options& options) {
  using kafka::client_role;
  const auto set_default = [&](std::string_view name, std::string value) {
    if (!config.get(client_role::producer, name)) {
      config.set(client_role::producer, name, std::move(value));
    }
  };
  set_default("linger.ms", "0");
  set_default("message.timeout.ms", "0");
  set_default("enable.sparse.connections", "false");
  set_default("reconnect.backoff.max.ms", "1000");
  set_default("statistics.interval.ms", std::to_string(options.health_interval.count()));
  return config;
}

// Delivery errors no retry can fix: the task is dead-lettered at once with the reason.
bool is_permanent(const boost::system::error_code& ec) {
  if (ec.category() != kafka::error_category()) {
    return false;
  }
  switch (ec.value()) {
    case 2:   // INVALID_MSG (corrupt record)
    case 10:  // MSG_SIZE_TOO_LARGE
    case 29:  // TOPIC_AUTHORIZATION_FAILED
    case 87:  // INVALID_RECORD
      return true;
    default:
      return false;
  }
}

}  // namespace

struct kafka_sink::impl {
  impl(asio::any_io_executor executor, const kafka::client_config& config, kafka_sink_options o)
      : options(std::move(o)),
        producer(std::move(executor), with_sink_defaults(config, options),
                 kafka::producer_options{.on_statistics = [this](std::string_view json) {
                   on_statistics(json);
                 }}) {}

  void on_statistics(std::string_view json) {
    const auto health = kafka::health_of(json, options.topic);
    if (!health) {
      return;  // nothing produced yet: no opinion
    }
    const bool writable = health->writable();
    if (writable != available) {
      if (writable) {
        CORVO_LOG(info, "scheduler") << "Kafka topic " << options.topic
                                     << " is writable again; claiming resumes";
      } else {
        CORVO_LOG(warning, "scheduler")
            << "Kafka topic " << options.topic << ": " << health->leaders_up << " of "
            << health->partitions << " partition leaders reachable; claiming paused";
      }
      available = writable;
    }
  }

  kafka_sink_options options;
  bool available = true;
  kafka::producer producer;
};

kafka_sink::kafka_sink(asio::any_io_executor executor, const kafka::client_config& config,
                       kafka_sink_options options)
    : impl_(std::make_unique<impl>(std::move(executor), config, std::move(options))) {
  if (impl_->options.topic.empty()) {
    throw std::invalid_argument("kafka_sink: the topic is empty");
  }
}

kafka_sink::~kafka_sink() = default;

asio::awaitable<void> kafka_sink::deliver(const claimed_task& t) {
  const auto value = encode_task_message(t, now());
  std::vector<kafka::header> headers;
  if (!t.work.traceparent.empty()) {
    headers.push_back(kafka::header{std::string(trace::traceparent_name), t.work.traceparent});
  }
  kafka::outgoing_message message{
      .topic = impl_->options.topic, .key = std::string_view(t.work.id), .value = value,
      .headers = std::move(headers)};
  boost::system::error_code ec;
  co_await impl_->producer.async_send(std::move(message),
                                      asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    co_return;
  }
  if (is_permanent(ec)) {
    throw permanent_error("Kafka refused the task message: " + kafka::error_name(ec) + " (" +
                          ec.message() + ")");
  }
  if (const auto fatal = impl_->producer.fatal_error()) {
    CORVO_LOG(error, "scheduler") << "the Kafka producer failed fatally (" << fatal.message()
                                  << "); the sink stays unavailable until the scheduler restarts";
  }
  throw boost::system::system_error(ec, "Kafka delivery of task '" + t.work.id + "'");
}

bool kafka_sink::available() const noexcept {
  const auto& producer = impl_->producer;
  return impl_->available && !producer.closed() && !producer.fatal_error();
}

asio::awaitable<void> kafka_sink::close(std::chrono::steady_clock::duration timeout) {
  co_await impl_->producer.close(timeout);
}

kafka::producer& kafka_sink::producer() noexcept { return impl_->producer; }

const kafka_sink_options& kafka_sink::options() const noexcept { return impl_->options; }

}  // namespace corvo::schedule
