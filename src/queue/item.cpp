#include <charconv>
#include <corvo/queue/item.hpp>

namespace corvo::queue {

namespace {
constexpr std::string_view envelope_mark = "c1|";
}  // namespace

std::string encode_envelope(std::string_view id, std::uint32_t attempts, std::string_view body) {
  if (id.find('|') != std::string_view::npos) {
    throw std::invalid_argument("queue item id '" + std::string(id) + "' contains '|'");
  }
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, attempts);
  std::string out;
  out.reserve(envelope_mark.size() + id.size() + 12 + body.size());
  out.append(envelope_mark).append(id).append(1, '|');
  out.append(digits, end).append(1, '|').append(body);
  return out;
}

envelope decode_envelope(std::string_view value) noexcept {
  envelope out;
  out.body = value;
  if (!value.starts_with(envelope_mark)) {
    return out;
  }
  auto rest = value.substr(envelope_mark.size());
  const auto id_end = rest.find('|');
  if (id_end == std::string_view::npos) {
    return out;
  }
  const auto id = rest.substr(0, id_end);
  rest.remove_prefix(id_end + 1);
  const auto count_end = rest.find('|');
  if (count_end == std::string_view::npos || count_end == 0) {
    return out;
  }
  std::uint32_t attempts = 0;
  const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + count_end, attempts);
  if (ec != std::errc{} || ptr != rest.data() + count_end) {
    return out;
  }
  out.id = id;
  out.attempts = attempts;
  out.body = rest.substr(count_end + 1);
  out.wrapped = true;
  return out;
}

bool has_hash_tag(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) {
    return false;
  }
  const auto close = key.find('}', open + 1);
  return close != std::string_view::npos && close > open + 1;
}

queue_keys::queue_keys(std::string queue)
    : queue_(std::move(queue)), tag_(has_hash_tag(queue_) ? queue_ : "{" + queue_ + "}") {
  if (queue_.empty()) {
    throw std::invalid_argument("a queue needs a name");
  }
}

std::string queue_keys::processing(std::string_view consumer) const {
  return tag_ + ":processing:" + std::string(consumer);
}

std::string queue_keys::heartbeat(std::string_view consumer) const {
  return tag_ + ":heartbeat:" + std::string(consumer);
}

}  // namespace corvo::queue
