#include <algorithm>
#include <corvo/pubsub/message_buffer.hpp>
#include <stdexcept>
#include <string>

namespace corvo::pubsub {

const char* to_string(overflow_policy policy) noexcept {
  switch (policy) {
    case overflow_policy::drop_oldest:
      return "drop_oldest";
    case overflow_policy::drop_newest:
      return "drop_newest";
    case overflow_policy::disconnect:
      return "disconnect";
  }
  return "unknown";
}

overflow_policy parse_overflow_policy(std::string_view text) {
  if (text == "drop_oldest") {
    return overflow_policy::drop_oldest;
  }
  if (text == "drop_newest") {
    return overflow_policy::drop_newest;
  }
  if (text == "disconnect") {
    return overflow_policy::disconnect;
  }
  throw std::invalid_argument("unknown overflow policy '" + std::string(text) +
                              "' (expected drop_oldest, drop_newest or disconnect)");
}

message_buffer::message_buffer(buffer_limits limits, overflow_policy policy)
    : limits_(limits), policy_(policy) {
  limits_.max_messages = std::max<std::size_t>(1, limits_.max_messages);
}

std::size_t message_buffer::size_of(const message& m) noexcept {
  return m.channel.size() + m.pattern.size() + m.payload.size();
}

bool message_buffer::fits(std::size_t extra_messages, std::size_t extra_bytes) const noexcept {
  return messages_.size() + extra_messages <= limits_.max_messages &&
         (limits_.max_bytes == 0 || bytes_ + extra_bytes <= limits_.max_bytes);
}

message_buffer::push_result message_buffer::push(message m) {
  const std::size_t size = size_of(m);
  if (!fits(1, size)) {
    const bool never_fits = limits_.max_bytes != 0 && size > limits_.max_bytes;
    if (policy_ == overflow_policy::disconnect) {
      return push_result::overflow;
    }
    if (policy_ == overflow_policy::drop_newest || never_fits) {
      ++dropped_;
      return push_result::dropped;
    }
    while (!fits(1, size)) {
      bytes_ -= size_of(messages_.front());
      messages_.pop_front();
      ++dropped_;
    }
  }
  bytes_ += size;
  messages_.push_back(std::move(m));
  return push_result::stored;
}

std::optional<message> message_buffer::pop() {
  if (messages_.empty()) {
    return std::nullopt;
  }
  std::optional<message> out(std::move(messages_.front()));
  messages_.pop_front();
  bytes_ -= size_of(*out);
  return out;
}

std::optional<std::chrono::steady_clock::time_point> message_buffer::oldest_received_at()
    const noexcept {
  if (messages_.empty()) {
    return std::nullopt;
  }
  return messages_.front().received_at;
}

}  // namespace corvo::pubsub
