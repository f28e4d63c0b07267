#pragma once
// A pub/sub message as a subscriber hands it out, and the errors of the pub/sub layer.
//
// A message comes from one of three subscriptions: a channel (SUBSCRIBE: `message` push),
// a pattern (PSUBSCRIBE: `pmessage`, with the pattern that matched) or a shard channel
// (SSUBSCRIBE: `smessage`). The payload is kept as the bytes the publisher sent; json()
// and as<T>() decode it through Boost.JSON when the publisher sent JSON (pubsub::publish
// with a typed value does).
//
// Trace context: a publisher may attach a W3C traceparent (publish(..., traceparent)). It
// travels in front of the payload as "\x1etraceparent=<55 characters>\n" (the ASCII record
// separator makes it unlike any text or JSON payload); a subscriber strips it into
// message::traceparent and hands out the payload as published. Only messages published with
// a trace carry it; other subscribers (redis-cli, other clients) see it as part of the bytes.

#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <corvo/redis/response.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace corvo::pubsub {

/// Which kind of subscription delivered a message.
enum class message_kind {
  channel,  ///< SUBSCRIBE
  pattern,  ///< PSUBSCRIBE (message::pattern says which pattern matched)
  shard,    ///< SSUBSCRIBE
};

/// "channel", "pattern" or "shard".
const char* to_string(message_kind kind) noexcept;

/// A payload that is not JSON, or not the JSON the caller asked for.
class decode_error : public std::runtime_error {
 public:
  decode_error(std::string channel, const std::string& what);
  /// The channel the message came from.
  const std::string& channel() const noexcept { return channel_; }

 private:
  std::string channel_;
};

struct message {
  message_kind kind = message_kind::channel;
  std::string channel;
  /// The subscribed pattern that matched `channel` (message_kind::pattern only).
  std::string pattern;
  std::string payload;
  /// The W3C trace context the publisher attached (see the top), or empty.
  std::string traceparent;
  /// When the subscriber read it from the connection (for the lag: now - received_at).
  std::chrono::steady_clock::time_point received_at{};

  /// The payload parsed as JSON. Throws decode_error naming the channel when it is not.
  boost::json::value json() const;

  /// The payload decoded into T through boost::json::value_to (T needs a tag_invoke
  /// value_to overload, or is a type Boost.JSON converts by itself). Throws decode_error
  /// naming the channel when the payload is not JSON or does not convert.
  template <class T>
  T as() const {
    boost::json::value value = json();
    try {
      return boost::json::value_to<T>(value);
    } catch (const std::exception& e) {
      throw decode_error(channel, std::string("payload does not convert: ") + e.what());
    }
  }
};

/// `payload` with `traceparent` in front in the form described at the top; `payload`
/// unchanged when `traceparent` is empty. Throws std::invalid_argument for an invalid
/// traceparent (core/trace.hpp).
std::string with_traceparent(std::string_view traceparent, std::string payload);

/// The message a `message`, `pmessage` or `smessage` push carries; nothing for any other
/// push (subscription confirmations, invalidations) or a push with the wrong shape.
std::optional<message> message_from_push(const redis::generic_response& push);
/// The same, moving the channel, pattern and payload strings out of `push` instead of
/// copying them (the subscriber's delivery path); `push` is left valid but unspecified when
/// a message is returned, unchanged otherwise.
std::optional<message> message_from_push(redis::generic_response&& push);

/// Errors of the pub/sub layer (category "corvo.pubsub").
enum class error {
  /// The subscriber's buffer overflowed under overflow_policy::disconnect.
  buffer_overflow = 1,
  /// The subscriber was stopped (cancel(), or run() ended).
  subscriber_stopped,
};

const boost::system::error_category& category() noexcept;
boost::system::error_code make_error_code(error e) noexcept;

}  // namespace corvo::pubsub

namespace boost::system {
template <>
struct is_error_code_enum<corvo::pubsub::error> : std::true_type {};
}  // namespace boost::system
