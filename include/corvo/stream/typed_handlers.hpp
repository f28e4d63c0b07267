#pragma once
// Dispatch of typed stream events (entry.hpp) to handlers registered by event type.
//
//   struct order_created { std::string id; int amount; };
//   order_created tag_invoke(boost::json::value_to_tag<order_created>, const boost::json::value&);
//
//   stream::typed_handlers handlers;
//   handlers.on<order_created>("order.created",
//       [&](order_created order, const stream::entry& e) { return book(order); });
//   co_await consumer.run(handlers);
//
// The entry's `type` field selects the handler; its `data` field (JSON) is converted to the
// registered C++ type with boost::json::value_to. Entries no code change can handle — no
// `type` field, a type nobody registered, `data` missing, not JSON or not converting — make
// the call throw stream::permanent_error, which the consumer dead-letters at once with the
// reason (kinds "decode_error" and "unknown_type"). Failures of the handler itself are
// ordinary failures (retried, then dead-lettered after max_deliveries).
// (The same shape as kafka::typed_handlers, over a stream entry instead of a Kafka message.)

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/stream/entry.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace corvo::stream {

namespace asio = boost::asio;

/// Thrown by a handler (or the typed dispatch) for an entry that can never be handled: the
/// consumer dead-letters it at once instead of retrying. `kind` is a short machine-readable
/// word ("decode_error", "unknown_type", or the handler's own).
class permanent_error : public std::runtime_error {
 public:
  explicit permanent_error(const std::string& reason, std::string kind = "permanent_error")
      : std::runtime_error(reason), kind_(std::move(kind)) {}
  const std::string& kind() const noexcept { return kind_; }

 private:
  std::string kind_;
};

class typed_handlers {
 public:
  typed_handlers();

  /// Registers `handler` for entries of `type`, their `data` converted to T. The handler is
  /// called as handler(T, const entry&) or handler(T) and returns asio::awaitable<void>; T
  /// may be taken by value, `const T&` or `T&&` (the decoded value lives until the handler's
  /// awaitable completes). The handler is stored for the lifetime of this object and its
  /// copies (which share registrations). Registering a type twice replaces the handler.
  template <class T, class Handler>
  typed_handlers& on(std::string type, Handler handler) {
    static_assert(std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const entry&> ||
                      std::is_invocable_r_v<asio::awaitable<void>, Handler&, T>,
                  "a typed handler takes (T, const entry&) or (T) and returns "
                  "asio::awaitable<void>");
    add(std::move(type), decoder<T, Handler>{std::move(handler)});
    return *this;
  }

  /// Decodes and dispatches `e` (see the header comment). Decoding happens before the
  /// returned awaitable is created, so a permanent_error is thrown by the call itself.
  asio::awaitable<void> operator()(const entry& e) const;

  /// True when a handler is registered for `type`.
  bool handles(std::string_view type) const;

  /// The registered types, sorted.
  std::vector<std::string> types() const;

 private:
  using handler_entry =
      std::function<asio::awaitable<void>(const boost::json::value&, const entry&)>;

  template <class T, class Handler>
  struct decoder {
    Handler handler;
    asio::awaitable<void> operator()(const boost::json::value& data, const entry& e) {
      T value = decode(data, e);  // throws here, before an awaitable exists
      return run(handler, std::move(value), e);
    }

    static asio::awaitable<void> run(Handler& handler, T value, const entry& e) {
      // Named awaitable: see kafka::typed_handlers (GCC 12 and by-value parameters).
      asio::awaitable<void> handling = invoke(handler, std::move(value), e);
      co_await std::move(handling);
    }

    static asio::awaitable<void> invoke(Handler& handler, T&& value, const entry& e) {
      if constexpr (std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const entry&>) {
        return handler(std::move(value), e);
      } else {
        return handler(std::move(value));
      }
    }

    static T decode(const boost::json::value& data, const entry& e) {
      try {
        return boost::json::value_to<T>(data);
      } catch (const boost::system::system_error& ex) {
        throw_decode_error(e, ex.code().message().c_str());
      } catch (const std::exception& ex) {
        throw_decode_error(e, ex.what());
      }
    }
  };

  [[noreturn]] static void throw_decode_error(const entry& e, const char* what);

  void add(std::string type, handler_entry h);

  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace corvo::stream
