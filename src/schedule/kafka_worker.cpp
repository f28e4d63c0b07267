#include <corvo/core/error.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/schedule/kafka_worker.hpp>

#include <boost/system/system_error.hpp>

namespace corvo::schedule {

struct kafka_worker::impl {
  impl(asio::any_io_executor executor, const kafka::client_config& config,
       const handler_registry& h, kafka_worker_options o)
      : handlers(h), options(prepare(std::move(o))), consumer(std::move(executor), config,
                                                              options.consumer) {}

  static kafka_worker_options prepare(kafka_worker_options o) {
    if (o.topic.empty()) {
      throw std::invalid_argument("kafka_worker: the topic is empty");
    }
    o.consumer.topics = {o.topic};
    return o;
  }

  asio::awaitable<void> handle(const kafka::message& m) {
    claimed_task t;
    task_message decoded;
    try {
      decoded = decode_task_message(m.value());
    } catch (const permanent_error& e) {
      throw kafka::permanent_error(e.what(), "decode_error");
    }
    const auto* handler = handlers.find(decoded.work.type);
    if (handler == nullptr) {
      throw kafka::permanent_error(
          "no handler registered for task type '" + decoded.work.type + "'", "unknown_type");
    }
    if (observer) {
      observer(decoded);
    }
    t.work = std::move(decoded.work);
    // The trace context travels as a record header; an invalid one is ignored (W3C: the
    // receiver starts without a parent rather than failing the work).
    if (const auto tp = m.header(trace::traceparent_name);
        tp && trace::is_valid_traceparent(*tp)) {
      t.work.traceparent = std::string(*tp);
    }
    t.token = std::to_string(m.partition()) + ":" + std::to_string(m.offset());
    bool permanent = false;
    std::string reason;
    try {
      co_await run_bounded(*handler, t, run_limit(t.work));
    } catch (const permanent_error& e) {
      permanent = true;
      reason = e.what();
    }
    if (permanent) {
      throw kafka::permanent_error(reason, "permanent_error");
    }
  }

  // The run timeout of `t`: its own, else the worker's; zero means none.
  std::chrono::milliseconds run_limit(const task& t) const {
    if (t.timeout && t.timeout->count() > 0) {
      return *t.timeout;
    }
    return options.run_timeout;
  }

  static asio::awaitable<void> run_handler(const handler_registry::handler_fn& handler,
                                           const claimed_task& t) {
    co_await handler(t);
  }

  // Runs the handler, cancelled after `limit` (if any): a timed-out run is an ordinary
  // failure, so the consumer retries it and dead-letters it after its attempts.
  static asio::awaitable<void> run_bounded(const handler_registry::handler_fn& handler,
                                           const claimed_task& t, std::chrono::milliseconds limit) {
    if (limit.count() <= 0) {
      co_await handler(t);
      co_return;
    }
    bool timed_out = false;
    try {
      co_await with_timeout(run_handler(handler, t), limit);
    } catch (const boost::system::system_error& e) {
      if (e.code() != error::timed_out) {
        throw;
      }
      timed_out = true;
    }
    if (timed_out) {
      throw std::runtime_error("run timed out after " + std::to_string(limit.count()) + " ms");
    }
  }

  const handler_registry& handlers;
  kafka_worker_options options;
  kafka::consumer consumer;
  start_observer observer;
};

kafka_worker::kafka_worker(asio::any_io_executor executor, const kafka::client_config& config,
                           const handler_registry& handlers, kafka_worker_options options)
    : impl_(std::make_unique<impl>(std::move(executor), config, handlers, std::move(options))) {}

kafka_worker::~kafka_worker() = default;

asio::awaitable<void> kafka_worker::run() {
  impl* self = impl_.get();
  kafka::consumer::handler_type handler = [self](const kafka::message& m) {
    return self->handle(m);
  };
  co_await impl_->consumer.run(std::move(handler));
}

void kafka_worker::stop() { impl_->consumer.stop(); }

void kafka_worker::on_start(start_observer observer) { impl_->observer = std::move(observer); }

kafka::consumer& kafka_worker::consumer() noexcept { return impl_->consumer; }

}  // namespace corvo::schedule
