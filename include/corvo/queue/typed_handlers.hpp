#pragma once
// Dispatch of JSON queue items to handlers registered by type.
//
//   struct coupon_request { std::string user; };
//   coupon_request tag_invoke(boost::json::value_to_tag<coupon_request>, const
//   boost::json::value&);
//
//   corvo::queue::typed_handlers handlers;
//   handlers.on<coupon_request>("coupon.request",
//       [&](coupon_request r, const corvo::queue::item&) { return issue(r); });
//   corvo::queue::reliable_queue coupons(redis, options, handlers);
//
// An item's body is a JSON object {"type": "...", "payload": ...} (what producer::push(type,
// value) writes; both field names are options). The `type` member selects the handler and
// the `payload` member (or the whole object, when payload_field is empty) is converted to the
// registered C++ type with boost::json::value_to (a tag_invoke overload or Boost.Describe).
// An item no code change can handle — the body is not JSON, not an object, has no string
// type, names a type nobody registered, or does not convert — makes the call throw
// queue::permanent_error (kinds "decode_error", "unknown_type"): the queue dead-letters it at
// once with the reason and goes on. Failures of the handler itself are ordinary failures.

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/queue/item.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace corvo::queue {

namespace asio = boost::asio;

class typed_handlers {
 public:
  struct options {
    /// The member of the JSON object that names the item's type.
    std::string type_field = "type";
    /// The member converted to the handler's type; empty converts the whole object.
    std::string payload_field = "payload";
  };

  typed_handlers() : typed_handlers(options{}) {}
  explicit typed_handlers(options opts);

  /// Registers `handler` for items of `type`, converted to T. It is called as
  /// handler(T, const item&) or handler(T) and returns asio::awaitable<void>; the decoded
  /// value lives until the handler's awaitable has completed, so T may be taken by value or
  /// reference. Registrations are shared by copies of this object and live as long as the
  /// last copy. Registering a type again replaces the earlier handler.
  template <class T, class Handler>
  typed_handlers& on(std::string type, Handler handler) {
    static_assert(std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const item&> ||
                      std::is_invocable_r_v<asio::awaitable<void>, Handler&, T>,
                  "a typed queue handler takes (T, const item&) or (T) and returns "
                  "asio::awaitable<void>");
    add(std::move(type), decoder<T, Handler>{std::move(handler)});
    return *this;
  }

  /// Decodes and dispatches `it`. Decoding happens before the awaitable is created, so a
  /// permanent_error is thrown by the call itself.
  asio::awaitable<void> operator()(const item& it) const;

  /// True when a handler is registered for `type`.
  bool handles(std::string_view type) const;

  /// The registered types, sorted.
  std::vector<std::string> types() const;

 private:
  using entry = std::function<asio::awaitable<void>(const boost::json::value&, const item&,
                                                    std::string_view type)>;

  template <class T, class Handler>
  struct decoder {
    Handler handler;
    asio::awaitable<void> operator()(const boost::json::value& payload, const item& it,
                                     std::string_view type) {
      T value = decode(payload, type);  // throws here, before an awaitable exists
      return run(handler, std::move(value), it);
    }

    // The decoded value lives in this frame until the handler's awaitable has completed.
    static asio::awaitable<void> run(Handler& handler, T value, const item& it) {
      // Named awaitable (GCC 12 may destroy by-value parameters inside a co_await twice).
      asio::awaitable<void> handling = invoke(handler, std::move(value), it);
      co_await std::move(handling);
    }

    static asio::awaitable<void> invoke(Handler& handler, T&& value, const item& it) {
      if constexpr (std::is_invocable_r_v<asio::awaitable<void>, Handler&, T, const item&>) {
        return handler(std::move(value), it);
      } else {
        return handler(std::move(value));
      }
    }

    static T decode(const boost::json::value& payload, std::string_view type) {
      try {
        return boost::json::value_to<T>(payload);
      } catch (const boost::system::system_error& e) {
        throw_decode_error(type, e.code().message().c_str());
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

}  // namespace corvo::queue
