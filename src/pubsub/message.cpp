#include <boost/json/parse.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/pubsub/message.hpp>
#include <corvo/redis/resp3/node.hpp>

namespace corvo::pubsub {

const char* to_string(message_kind kind) noexcept {
  switch (kind) {
    case message_kind::channel:
      return "channel";
    case message_kind::pattern:
      return "pattern";
    case message_kind::shard:
      return "shard";
  }
  return "unknown";
}

decode_error::decode_error(std::string channel, const std::string& what)
    : std::runtime_error("pubsub message on '" + channel + "': " + what),
      channel_(std::move(channel)) {}

boost::json::value message::json() const {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(payload, ec);
  if (ec) {
    throw decode_error(channel, "payload is not JSON (" + ec.message() + ")");
  }
  return value;
}

namespace {

constexpr std::string_view trace_marker = "\x1etraceparent=";
constexpr std::size_t traceparent_size = 55;

// Moves a traceparent put in front of the payload by with_traceparent() into `m`. A payload
// that only looks like it (no valid traceparent, no newline after it) is left as it is.
void take_traceparent(message& m) {
  const std::string_view p = m.payload;
  const std::size_t header = trace_marker.size() + traceparent_size + 1;
  if (p.size() < header || p.substr(0, trace_marker.size()) != trace_marker ||
      p[header - 1] != '\n') {
    return;
  }
  const auto tp = p.substr(trace_marker.size(), traceparent_size);
  if (!trace::is_valid_traceparent(tp)) {
    return;
  }
  m.traceparent.assign(tp);
  m.payload.erase(0, header);
}

// Shared by both overloads: `take` copies or moves one node's value.
template <class Push, class Take>
std::optional<message> decode_push(Push& push, Take take) {
  // nodes: [0] the push aggregate, then its elements at depth 1 (all leaves here).
  if (push.size() < 4 || push[0].depth != 0) {
    return std::nullopt;
  }
  const std::size_t elements = push[0].aggregate_size;
  if (elements + 1 != push.size()) {
    return std::nullopt;  // a nested aggregate: not a message
  }
  const std::string& kind = push[1].value;
  message out;
  if (kind == "message" && elements == 3) {
    out.kind = message_kind::channel;
    out.channel = take(push[2].value);
    out.payload = take(push[3].value);
  } else if (kind == "smessage" && elements == 3) {
    out.kind = message_kind::shard;
    out.channel = take(push[2].value);
    out.payload = take(push[3].value);
  } else if (kind == "pmessage" && elements == 4) {
    out.kind = message_kind::pattern;
    out.pattern = take(push[2].value);
    out.channel = take(push[3].value);
    out.payload = take(push[4].value);
  } else {
    return std::nullopt;
  }
  if (!out.payload.empty() && out.payload.front() == trace_marker.front()) {
    take_traceparent(out);
  }
  return out;
}

}  // namespace

std::string with_traceparent(std::string_view traceparent, std::string payload) {
  if (traceparent.empty()) {
    return payload;
  }
  trace::check_traceparent(traceparent, "pubsub message");
  std::string out;
  out.reserve(trace_marker.size() + traceparent.size() + 1 + payload.size());
  out.append(trace_marker).append(traceparent).append(1, '\n').append(payload);
  return out;
}

std::optional<message> message_from_push(const redis::generic_response& push) {
  return decode_push(push, [](const std::string& value) { return value; });
}

std::optional<message> message_from_push(redis::generic_response&& push) {
  return decode_push(push, [](std::string& value) { return std::move(value); });
}

namespace {

class pubsub_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corvo.pubsub"; }
  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::buffer_overflow:
        return "the subscriber's buffer overflowed (overflow policy: disconnect)";
      case error::subscriber_stopped:
        return "the subscriber was stopped";
    }
    return "unknown pubsub error";
  }
};

}  // namespace

const boost::system::error_category& category() noexcept {
  static const pubsub_category instance;
  return instance;
}

boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace corvo::pubsub
