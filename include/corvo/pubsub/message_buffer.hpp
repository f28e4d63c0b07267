#pragma once
// The bounded buffer between a subscriber's connection and its receive() loop, with the
// overflow policy that decides what a slow consumer loses. Plain code (no I/O): the
// subscriber pushes what it reads, receive() pops.
//
// Bounds: at most `max_messages` messages and, when `max_bytes` is not 0, at most that many
// bytes of channel + pattern + payload. A message that does not fit:
// - drop_oldest (default): the oldest buffered messages make room; each one dropped counts;
// - drop_newest: the new message is dropped and counts;
// - disconnect: nothing is dropped; push() reports overflow and the subscriber stops (the
//   caller learns that it fell behind instead of losing messages silently).
// A single message larger than max_bytes never fits: dropped (counted) under the two drop
// policies, overflow under disconnect.

#include <chrono>
#include <corvo/pubsub/message.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>

namespace corvo::pubsub {

enum class overflow_policy { drop_oldest, drop_newest, disconnect };

/// "drop_oldest", "drop_newest" or "disconnect".
const char* to_string(overflow_policy policy) noexcept;
/// Parses the names above; throws std::invalid_argument listing them for anything else.
overflow_policy parse_overflow_policy(std::string_view text);

struct buffer_limits {
  /// Messages buffered at most (at least 1).
  std::size_t max_messages = 10'000;
  /// Bytes (channel + pattern + payload) buffered at most; 0: no byte bound.
  std::size_t max_bytes = 0;
};

class message_buffer {
 public:
  enum class push_result {
    stored,    ///< buffered (possibly after dropping older messages: see dropped())
    dropped,   ///< the new message was dropped (drop_newest, or larger than max_bytes)
    overflow,  ///< disconnect policy: it does not fit; the buffer is unchanged
  };

  message_buffer(buffer_limits limits, overflow_policy policy);

  push_result push(message m);
  /// The oldest message, removed; nothing when empty.
  std::optional<message> pop();

  bool empty() const noexcept { return messages_.empty(); }
  std::size_t size() const noexcept { return messages_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  /// Messages dropped by the overflow policy since construction.
  std::uint64_t dropped() const noexcept { return dropped_; }
  /// received_at of the oldest buffered message (the lag is now minus this).
  std::optional<std::chrono::steady_clock::time_point> oldest_received_at() const noexcept;

  const buffer_limits& limits() const noexcept { return limits_; }
  overflow_policy policy() const noexcept { return policy_; }

  /// The bytes a message counts for.
  static std::size_t size_of(const message& m) noexcept;

 private:
  bool fits(std::size_t extra_messages, std::size_t extra_bytes) const noexcept;

  buffer_limits limits_;
  overflow_policy policy_;
  std::deque<message> messages_;
  std::size_t bytes_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace corvo::pubsub
