#pragma once
// Kafka records: headers to send, and a consumed message handed to handlers.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// librdkafka's message (rd_kafka_message_t), declared so this header does not include
// librdkafka.
struct rd_kafka_message_s;

namespace corvo::kafka {

/// A record header to send. A header without a value is a Kafka null header.
struct header {
  std::string name;
  std::optional<std::string> value;

  friend bool operator==(const header&, const header&) = default;
};

/// A header of a consumed message; views into the message.
struct header_view {
  std::string_view name;
  std::optional<std::string_view> value;
};

/// A consumed message. Move-only; owns the librdkafka message (and through it the fetched
/// buffer), so the views it hands out stay valid as long as the message lives.
class message {
 public:
  /// Adopts a message returned by librdkafka (corvo's consumer uses this). Null is not
  /// allowed.
  explicit message(rd_kafka_message_s* native) noexcept;

  /// A message built in memory, for tests of handlers and for in-process sources.
  static message make(std::string topic, std::int32_t partition, std::int64_t offset,
                      std::optional<std::string> key, std::string value,
                      std::vector<header> headers = {});

  message(message&&) noexcept;
  message& operator=(message&&) noexcept;
  ~message();

  std::string_view topic() const noexcept { return topic_; }
  std::int32_t partition() const noexcept { return partition_; }
  std::int64_t offset() const noexcept { return offset_; }
  /// The key; nullopt for a null key (an empty key is an empty string).
  std::optional<std::string_view> key() const noexcept { return key_; }
  std::string_view value() const noexcept { return value_; }
  /// The record timestamp (create or log-append time), when the record has one.
  std::optional<std::chrono::system_clock::time_point> timestamp() const noexcept;

  /// All headers in record order (names may repeat).
  std::vector<header_view> headers() const;
  /// The value of the last header named `name`; nullopt when there is none or its value is
  /// null (has_header() tells the two apart).
  std::optional<std::string_view> header(std::string_view name) const;
  bool has_header(std::string_view name) const;

  /// librdkafka's message; null for messages built with make().
  rd_kafka_message_s* native_handle() const noexcept { return native_.get(); }

 private:
  message() = default;

  struct native_deleter {
    void operator()(rd_kafka_message_s* native) const noexcept;
  };
  struct owned_parts;

  std::unique_ptr<rd_kafka_message_s, native_deleter> native_;
  std::unique_ptr<owned_parts> owned_;
  std::string_view topic_;
  std::optional<std::string_view> key_;
  std::string_view value_;
  std::int32_t partition_ = -1;
  std::int64_t offset_ = -1;
  std::int64_t timestamp_ms_ = -1;
};

}  // namespace corvo::kafka
