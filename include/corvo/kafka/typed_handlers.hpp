#pragma once
// Dispatch of JSON messages to handlers registered by message type.
//
//   struct order_created { std::string id; int amount; };
//   order_created tag_invoke(boost::json::value_to_tag<order_created>, const boost::json::value&);
//
//   corvo::kafka::typed_handlers handlers;
//   handlers.on<order_created>("order.created",
//       [&](order_created order, const corvo::kafka::message&) { return book(order); });
//   co_await consumer.run(handlers);
//
// A message's value is a JSON object; its `type` field (configurable) selects the handler,
// and the object (or its `payload_field` member, when configured) is converted to the
// registered C++ type with boost::json::value_to (so a tag_invoke overload, or Boost.Describe,
// defines the mapping). Messages that cannot be handled by any code change — the value is
// not JSON, not an object, has no string type field, names a type nobody registered, or does
// not convert — make the call throw kafka::permanent_error, which the consumer publishes to
// the dead-letter topic at once with the reason (kinds "decode_error" and "unknown_type").
// Failures of the handler itself are ordinary failures (retried, then dead-lettered).

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/message.hpp>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace corvo::kafka {

namespace asio = boost::asio;

class typed_handlers {
 public:
  struct options {
    /// The member of the JSON object that names the message type.
    std::string type_field = "type";
    /// The member converted to the handler's type; empty converts the whole object.
    std::string payload_field;
  };

  typed_handlers() : typed_handlers(options{}) {}
  explicit typed_handlers(options opts);

  /// Registers `handler` for messages of `type`, converted to T. The handler is called as
  /// handler(T, const message&) or handler(T) and returns asio::awaitable<void>; T may be
  /// taken by value, `const T&` or `T&&` (the decoded object outlives the handler's
  /// awaitable; kafka_typed_handlers_test
  /// handlers_taking_a_reference_read_a_live_value_after_suspending). It is
  /// stored for the lifetime of this object (and its copies, which share registrations), so
  /// a coroutine lambda's captures stay valid while a consumer runs it. Registering a type
  /// twice replaces the earlier handler.
  template <class T, class Handler>
  typed_handlers& on(std::string type, Handler handler) {
    static_assert(std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const message&> ||
                      std::is_invocable_r_v<asio::awaitable<void>, Handler&, T>,
                  "a typed handler takes (T, const message&) or (T) and returns "
                  "asio::awaitable<void>");
    add(std::move(type), decoder<T, Handler>{std::move(handler)});
    return *this;
  }

  /// Decodes and dispatches `m` (see the header comment). Decoding happens before the
  /// returned awaitable is created, so a permanent_error is thrown by the call itself.
  asio::awaitable<void> operator()(const message& m) const;

  /// True when a handler is registered for `type`.
  bool handles(std::string_view type) const;

  /// The registered types, sorted.
  std::vector<std::string> types() const;

 private:
  using entry = std::function<asio::awaitable<void>(const boost::json::value&, const message&,
                                                    std::string_view type)>;

  template <class T, class Handler>
  struct decoder {
    Handler handler;
    asio::awaitable<void> operator()(const boost::json::value& payload, const message& m,
                                     std::string_view type) {
      T value = decode(payload, type);  // throws here, before an awaitable exists
      return run(handler, std::move(value), m);
    }

    // The decoded value lives in this coroutine's frame until the handler's awaitable has
    // completed: whatever the handler takes it as (T, const T&, T&&, or something that
    // refers into it), it refers to a live object while it runs. `handler` is stored in the
    // registration (see on()); `m` outlives the call (consumer::handler_type).
    static asio::awaitable<void> run(Handler& handler, T value, const message& m) {
      // Named awaitable: the handler's by-value parameters are destroyed with this
      // statement, not within a co_await expression (GCC 12 may destroy those twice).
      asio::awaitable<void> handling = invoke(handler, std::move(value), m);
      co_await std::move(handling);
    }

    static asio::awaitable<void> invoke(Handler& handler, T&& value, const message& m) {
      if constexpr (std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const message&>) {
        return handler(std::move(value), m);
      } else {
        return handler(std::move(value));
      }
    }

    static T decode(const boost::json::value& payload, std::string_view type) {
      try {
        return boost::json::value_to<T>(payload);
      } catch (const boost::system::system_error& e) {
        throw_decode_error(type, e.code().message().c_str());  // without the source location
      } catch (const std::exception& e) {
        throw_decode_error(type, e.what());
      }
    }
  };

  [[noreturn]] static void throw_decode_error(std::string_view type, const char* what);

  void add(std::string type, entry e);

  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace corvo::kafka
