#include <corvo/kafka/message.hpp>

#include <librdkafka/rdkafka.h>

namespace corvo::kafka {

struct message::owned_parts {
  std::string topic;
  std::optional<std::string> key;
  std::string value;
  std::vector<kafka::header> headers;
};

void message::native_deleter::operator()(rd_kafka_message_s* native) const noexcept {
  rd_kafka_message_destroy(native);
}

message::message(rd_kafka_message_s* native) noexcept : native_(native) {
  topic_ = native->rkt != nullptr ? rd_kafka_topic_name(native->rkt) : "";
  if (native->key != nullptr) {
    key_ = std::string_view(static_cast<const char*>(native->key), native->key_len);
  }
  if (native->payload != nullptr) {
    value_ = std::string_view(static_cast<const char*>(native->payload), native->len);
  }
  partition_ = native->partition;
  offset_ = native->offset;
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  timestamp_ms_ = rd_kafka_message_timestamp(native, &type);
  if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE) {
    timestamp_ms_ = -1;
  }
}

message message::make(std::string topic, std::int32_t partition, std::int64_t offset,
                      std::optional<std::string> key, std::string value,
                      std::vector<kafka::header> headers) {
  message m;
  m.owned_ = std::make_unique<owned_parts>(
      owned_parts{std::move(topic), std::move(key), std::move(value), std::move(headers)});
  m.topic_ = m.owned_->topic;
  if (m.owned_->key) {
    m.key_ = std::string_view(*m.owned_->key);
  }
  m.value_ = m.owned_->value;
  m.partition_ = partition;
  m.offset_ = offset;
  m.timestamp_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return m;
}

message::message(message&&) noexcept = default;
message& message::operator=(message&&) noexcept = default;
message::~message() = default;

std::optional<std::chrono::system_clock::time_point> message::timestamp() const noexcept {
  if (timestamp_ms_ < 0) {
    return std::nullopt;
  }
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(timestamp_ms_));
}

std::vector<header_view> message::headers() const {
  std::vector<header_view> result;
  if (owned_) {
    for (const auto& h : owned_->headers) {
      result.push_back(
          {h.name, h.value ? std::optional<std::string_view>(*h.value) : std::nullopt});
    }
    return result;
  }
  if (!native_) {
    return result;
  }
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(native_.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return result;
  }
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0;
       rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    result.push_back({name, value != nullptr ? std::optional<std::string_view>(std::string_view(
                                                   static_cast<const char*>(value), size))
                                             : std::nullopt});
  }
  return result;
}

std::optional<std::string_view> message::header(std::string_view name) const {
  std::optional<std::string_view> found;
  for (const auto& h : headers()) {
    if (h.name == name) {
      found = h.value;
    }
  }
  return found;
}

bool message::has_header(std::string_view name) const {
  for (const auto& h : headers()) {
    if (h.name == name) {
      return true;
    }
  }
  return false;
}

}  // namespace corvo::kafka
