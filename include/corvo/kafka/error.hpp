#pragma once
// Kafka errors as `boost::system::error_code` in the "corvo.kafka" category.
//
// The values are librdkafka's `rd_kafka_resp_err_t` codes unchanged: negative values are
// errors raised by the client itself (`-192` message timed out, `-184` local queue full),
// positive values are errors returned by a broker (`10` message too large). message()
// is librdkafka's text for the code (rd_kafka_err2str), so an error_code from any corvo
// Kafka operation prints the same words librdkafka's own logs use. `kafka::error` names the
// codes corvo itself checks for; any other rd_kafka_resp_err_t converts with
// make_error_code(int).

#include <boost/system/error_code.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace corvo::kafka {

/// The rd_kafka_resp_err_t codes corvo refers to by name (same numeric values).
enum class error : int {
  no_error = 0,
  /// Local: the handle is being destroyed (sends still queued when a producer is destroyed).
  destroy = -197,
  /// Local: the message was not delivered within `message.timeout.ms`.
  msg_timed_out = -192,
  /// Local: the topic or partition does not exist in the cluster.
  unknown_partition = -190,
  unknown_topic = -188,
  /// Local: an argument (a property value, a partition) is invalid.
  invalid_arg = -186,
  timed_out = -185,
  /// Local: the producer queue is full (`queue.buffering.max.messages`/`.kbytes`).
  queue_full = -184,
  /// Local: the operation is not allowed in the handle's current state.
  state = -172,
  /// Local: the message was purged from the local queue (producer closed past its deadline).
  purge_queue = -152,
  /// Local: the message was purged while in flight to a broker.
  purge_inflight = -151,
  /// Local: the client raised a fatal error (see rd_kafka_fatal_error); it is unusable.
  fatal = -150,
  /// Broker: the message is larger than the broker accepts.
  msg_size_too_large = 10,
};

/// The category of librdkafka error codes; its name is "corvo.kafka".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// An error_code for any rd_kafka_resp_err_t value.
inline boost::system::error_code make_error_code(int rd_kafka_resp_err) noexcept {
  return {rd_kafka_resp_err, error_category()};
}

/// librdkafka's symbolic name of the code ("_MSG_TIMED_OUT", "MSG_SIZE_TOO_LARGE"), or the
/// category's message for error codes of other categories.
std::string error_name(const boost::system::error_code& ec);

/// Thrown by a message handler (or by corvo's typed dispatch) for a message that can never
/// succeed: a payload that does not decode, an unknown message type. The consumer does not
/// retry it; it publishes the message to the dead-letter topic at once, with `what()` as the
/// reason and `kind()` as a short machine-readable tag ("decode_error", "unknown_type", …).
class permanent_error : public std::runtime_error {
 public:
  explicit permanent_error(const std::string& reason, std::string kind = "permanent_error")
      : std::runtime_error(reason), kind_(std::move(kind)) {}
  const std::string& kind() const noexcept { return kind_; }

 private:
  std::string kind_;
};

}  // namespace corvo::kafka

template <>
struct boost::system::is_error_code_enum<corvo::kafka::error> : std::true_type {};
