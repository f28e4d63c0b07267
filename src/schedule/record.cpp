#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <corvo/core/trace.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <cstdint>
#include <stdexcept>

namespace corvo::schedule::detail {
namespace {

std::uint32_t parse_count(std::string_view text, const char* what) {
  std::uint32_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) {
    throw std::invalid_argument(std::string("task record: bad ") + what + " '" + std::string(text) +
                                "'");
  }
  return value;
}

// The shortest text that reads back as `value`.
std::string number_text(double value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, ec == std::errc{} ? end : buffer);
}

double parse_number(std::string_view text, const char* what) {
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) {
    throw std::invalid_argument(std::string("task record: bad ") + what + " '" + std::string(text) +
                                "'");
  }
  return value;
}

// "<initial ms>:<max ms>:<multiplier>:<jitter>"
retry_backoff parse_retry(std::string_view text) {
  std::string_view parts[4];
  for (std::size_t i = 0; i < 4; ++i) {
    const auto colon = text.find(':');
    if ((colon == std::string_view::npos) != (i == 3)) {
      throw std::invalid_argument("task record: bad retry backoff");
    }
    parts[i] = text.substr(0, colon);
    text.remove_prefix(i == 3 ? text.size() : colon + 1);
  }
  retry_backoff b;
  b.initial = std::chrono::milliseconds(parse_count(parts[0], "retry initial"));
  b.max = std::chrono::milliseconds(parse_count(parts[1], "retry max"));
  b.multiplier = parse_number(parts[2], "retry multiplier");
  b.jitter = parse_number(parts[3], "retry jitter");
  return b;
}

}  // namespace

std::string_view lease_token_of(std::string_view record) noexcept {
  const auto first = record.find('\n');
  const auto second = first == std::string_view::npos ? first : record.find('\n', first + 1);
  if (second == std::string_view::npos) {
    return {};
  }
  const auto options = record.substr(first + 1, second - first - 1);
  const auto at = options.find(" k");
  if (at == std::string_view::npos) {
    return {};
  }
  const auto token = options.substr(at + 2);
  return token.substr(0, token.find(' '));
}

std::optional<std::int64_t> token_due(std::string_view token) noexcept {
  // '<digits>.<hex>.<digits>', nothing else.
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (first == 0 || second == std::string_view::npos || second == first + 1) {
    return std::nullopt;
  }
  const auto is_digits = [](std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
  };
  const auto nonce = token.substr(first + 1, second - first - 1);
  const auto due = token.substr(second + 1);
  if (!is_digits(token.substr(0, first)) || !is_digits(due) ||
      nonce.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
    return std::nullopt;
  }
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(due.data(), due.data() + due.size(), value);
  if (ec != std::errc{} || ptr != due.data() + due.size()) {
    return std::nullopt;
  }
  return value;
}

void apply_lease(std::string_view token, task& t) noexcept {
  const auto due = token_due(token);
  if (!due) {
    return;
  }
  ++t.attempts;
  if (t.occurrence == time_point{}) {
    t.occurrence = time_point(std::chrono::microseconds(*due));
  }
}

std::string one_line(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return out;
}

namespace {

std::string encode(const task& t, bool with_occurrence) {
  if (t.type.empty()) {
    throw std::invalid_argument("task '" + t.id + "': the type is empty");
  }
  if (t.type.find('\n') != std::string::npos) {
    throw std::invalid_argument("task '" + t.id + "': the type contains a newline");
  }
  trace::check_traceparent(t.traceparent, "task '" + t.id + "'");
  std::string out;
  out += std::to_string(t.attempts);
  out += '\n';
  out += std::to_string(t.max_attempts);
  if (t.timeout && t.timeout->count() > 0) {
    out += ' ';
    out += std::to_string(t.timeout->count());
  }
  if (t.priority != priority::normal) {
    out += " p";
    out += std::to_string(static_cast<int>(t.priority));
  }
  if (t.retry) {
    out += " r";
    out += std::to_string(t.retry->initial.count());
    out += ':';
    out += std::to_string(t.retry->max.count());
    out += ':';
    out += number_text(t.retry->multiplier);
    out += ':';
    out += number_text(t.retry->jitter);
  }
  if (!t.traceparent.empty()) {
    out += " t";
    out += t.traceparent;
  }
  out += '\n';
  out += t.type;
  out += '\n';
  out += one_line(describe(t.repeat));
  out += '\n';
  out += one_line(t.last_error);
  out += '\n';
  if (with_occurrence) {
    out += std::to_string(t.occurrence.time_since_epoch().count());
    out += '\n';
  }
  out += boost::json::serialize(t.payload);
  return out;
}

}  // namespace

std::string encode_record(const task& t) {
  return encode(t, true);
}

std::string encode_waiting_record(const task& t) {
  return encode(t, t.occurrence != t.due);
}

void decode_record(std::string_view record, task& t) {
  std::string_view lines[5];
  std::string_view rest = record;
  for (auto& line : lines) {
    const auto nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      throw std::invalid_argument("task record: truncated");
    }
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
  }
  t.attempts = parse_count(lines[0], "attempt count");
  auto options = lines[1];
  auto space = options.find(' ');
  t.max_attempts = parse_count(options.substr(0, space), "max attempts");
  t.timeout.reset();
  t.priority = priority::normal;
  t.retry.reset();
  t.traceparent.clear();
  while (space != std::string_view::npos) {
    options.remove_prefix(space + 1);
    space = options.find(' ');
    const auto field = options.substr(0, space);
    if (field == "p1") {
      t.priority = priority::high;
    } else if (field == "p-1") {
      t.priority = priority::low;
    } else if (field.starts_with('r')) {
      t.retry = parse_retry(field.substr(1));
    } else if (field.starts_with('t')) {
      t.traceparent = std::string(field.substr(1));
    } else if (field.starts_with('k')) {
      // the token of the task's lease (lease_token_of): the store's, not a field of the task
    } else {
      t.timeout = std::chrono::milliseconds(parse_count(field, "run timeout"));
    }
  }
  t.type = std::string(lines[2]);
  t.repeat = parse_recurrence(lines[3]);
  t.last_error = std::string(lines[4]);
  if (const auto nl = rest.find('\n'); nl != std::string_view::npos) {
    const auto text = rest.substr(0, nl);
    std::int64_t micros = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), micros);
    if (ec != std::errc{} || ptr != text.data() + text.size()) {
      throw std::invalid_argument("task record: bad occurrence '" + std::string(text) + "'");
    }
    t.occurrence = time_point(std::chrono::microseconds(micros));
    rest.remove_prefix(nl + 1);
  }
  boost::system::error_code ec;
  t.payload = boost::json::parse(rest, ec);
  if (ec) {
    throw std::invalid_argument("task record: the payload is not JSON: " + ec.message());
  }
}

}  // namespace corvo::schedule::detail
