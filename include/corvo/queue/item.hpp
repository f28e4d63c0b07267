#pragma once
// What a queue holds and hands to handlers: items in an envelope that carries an id and an
// attempt count, the keys of one queue, and the error that skips retries.
//
// Envelope (the bytes stored in the Redis lists):
//   c1|<id>|<attempts>|<body>
// `id` is unique per push (a producer prefix and a counter), so two pushes of the same body
// are different bytes: an ack removes exactly the item it names (LREM of the exact bytes),
// never a look-alike. `attempts` counts the deliveries of the item that ended without
// success (failed, or its consumer died); it is rewritten (new bytes) each time the item
// goes back to the queue, so a late ack of an earlier delivery can never remove the new one.
// `body` is the payload, bytes as they are. An item in the list that is not an envelope
// (pushed by another client with a plain LPUSH) is accepted: its id is empty, its attempts 0
// and its body the whole value; if it must go back to the queue it is wrapped then.
//
// Keys of queue Q (one hash slot: Q itself, and Q's hash tag, or "{Q}" when Q has none,
// which hashes like Q):
//   Q                          LIST  items waiting (LPUSH by producers, popped from the tail)
//   tag:processing:<consumer>  LIST  items a reliable consumer took and has not settled
//   tag:heartbeat:<consumer>   STRING with a TTL: the consumer is alive while it exists
//   tag:consumers              ZSET  consumer → server time (ms) of its last heartbeat
//   tag:dead                   LIST  dead letters, newest first (see dead_letter)

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace corvo::queue {

/// One item handed to a handler.
struct item {
  /// The envelope's id (empty for an item that was pushed without an envelope).
  std::string id;
  /// Deliveries of this item that ended without success before this one (0 the first time).
  std::uint32_t attempts = 0;
  /// The payload.
  std::string body;
  /// The queue it came from.
  std::string queue;
};

/// A failure that retrying cannot fix (a body that does not decode, a type nobody
/// handles): the item goes to the dead letters at once, with this text as the reason.
class permanent_error : public std::runtime_error {
 public:
  explicit permanent_error(const std::string& what, std::string kind = "permanent")
      : std::runtime_error(what), kind_(std::move(kind)) {}
  /// "decode_error", "unknown_type" or "permanent".
  const std::string& kind() const noexcept { return kind_; }

 private:
  std::string kind_;
};

/// An envelope taken apart.
struct envelope {
  std::string_view id;
  std::uint32_t attempts = 0;
  std::string_view body;
  /// False for a value that is not an envelope (then body is the whole value).
  bool wrapped = false;
};

/// Wraps `body`. `id` must not contain '|' (throws std::invalid_argument).
std::string encode_envelope(std::string_view id, std::uint32_t attempts, std::string_view body);

/// Reads an envelope; a value that is not one is returned as an unwrapped body.
envelope decode_envelope(std::string_view value) noexcept;

/// The keys of one queue (see the header comment).
class queue_keys {
 public:
  explicit queue_keys(std::string queue);

  const std::string& queue() const noexcept { return queue_; }
  /// The prefix every other key starts with: Q when Q has a hash tag, else "{Q}".
  const std::string& tag() const noexcept { return tag_; }
  std::string processing(std::string_view consumer) const;
  std::string heartbeat(std::string_view consumer) const;
  std::string consumers() const { return tag_ + ":consumers"; }
  std::string dead() const { return tag_ + ":dead"; }
  /// Failed items waiting for their retry delay (ZSET, score = due time in server ms).
  std::string delayed() const { return tag_ + ":delayed"; }

 private:
  std::string queue_;
  std::string tag_;
};

/// True when `key` has a Redis Cluster hash tag ('{', at least one character, '}').
bool has_hash_tag(std::string_view key) noexcept;

}  // namespace corvo::queue
