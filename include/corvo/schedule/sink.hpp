#pragma once
// Where the dispatcher hands claimed tasks: run the handler in process (direct_sink), or
// publish to Kafka where a consumer group runs it (the Kafka sink).

#include <corvo/schedule/store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value_to.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace corvo::schedule {

/// A failure that retrying cannot fix (unknown task type, payload that does not decode): the
/// task goes to the dead-letter set at once, with this text as the reason.
class permanent_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class sink {
 public:
  virtual ~sink() = default;
  /// Runs (or durably hands off) one task; completes when done. Throws permanent_error for
  /// failures not worth a retry, anything else for a retryable failure.
  virtual asio::awaitable<void> deliver(const claimed_task& t) = 0;
  /// False while the sink cannot take tasks (e.g. Kafka unreachable): the dispatcher stops
  /// claiming, so tasks wait safely in the store.
  virtual bool available() const noexcept { return true; }
};

/// Handlers by task type.
class handler_registry {
 public:
  using handler_fn = std::function<asio::awaitable<void>(const claimed_task&)>;

  /// Registers `handler(T payload, const task& t) -> awaitable<void>` for `type`; the JSON
  /// payload is converted with boost::json::value_to<T> (tag_invoke). A payload that does
  /// not convert fails the task permanently with the conversion error.
  template <class T, class Handler>
  void on(std::string type, Handler handler) {
    add(std::move(type), typed_handler<T, Handler>{std::move(handler)});
  }

  /// Registers a handler that reads the claimed task as it is.
  void on_task(std::string type, handler_fn handler) { add(std::move(type), std::move(handler)); }

  /// The handler of `type`, or null.
  const handler_fn* find(std::string_view type) const;

 private:
  template <class T, class Handler>
  struct typed_handler {
    Handler handler;
    asio::awaitable<void> operator()(const claimed_task& t) const {
      T value = decode(t);
      co_await handler(std::move(value), t.work);
    }
    static T decode(const claimed_task& t) {
      try {
        return boost::json::value_to<T>(t.work.payload);
      } catch (const std::exception& e) {
        throw permanent_error("payload of task '" + t.work.id + "' (type " + t.work.type +
                              ") does not decode: " + e.what());
      }
    }
  };

  void add(std::string type, handler_fn handler);

  std::map<std::string, handler_fn, std::less<>> handlers_;
};

/// Runs the registered handler in this process. An unknown type is a permanent failure.
class direct_sink final : public sink {
 public:
  explicit direct_sink(const handler_registry& handlers) : handlers_(handlers) {}
  asio::awaitable<void> deliver(const claimed_task& t) override;

 private:
  const handler_registry& handlers_;
};

}  // namespace corvo::schedule
