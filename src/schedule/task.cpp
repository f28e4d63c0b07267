#include <array>
#include <cctype>
#include <charconv>
#include <corvo/schedule/cron_expression.hpp>
#include <corvo/schedule/task.hpp>
#include <limits>
#include <stdexcept>
#include <utility>

namespace corvo::schedule {
namespace {

using std::chrono::microseconds;

struct duration_unit {
  std::string_view suffix;
  std::int64_t micros;
};

// Largest first: describe() prints a period in the largest unit that divides it exactly.
constexpr std::array<duration_unit, 6> units = {{{"d", 86'400'000'000},
                                                 {"h", 3'600'000'000},
                                                 {"m", 60'000'000},
                                                 {"s", 1'000'000},
                                                 {"ms", 1'000},
                                                 {"us", 1}}};

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_blank(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

/// `word` followed by blanks at the start of `text`: the rest, trimmed.
std::optional<std::string_view> after_keyword(std::string_view text, std::string_view word) {
  if (text.size() <= word.size() || text.substr(0, word.size()) != word ||
      !is_blank(text[word.size()])) {
    return std::nullopt;
  }
  return trim(text.substr(word.size()));
}

[[noreturn]] void bad_recurrence(std::string_view text, std::string_view reason) {
  throw std::invalid_argument("recurrence '" + std::string(text) + "': " + std::string(reason));
}

/// "90s", "1h30m", "250ms": one or more <digits><unit> with units d, h, m, s, ms, us.
microseconds parse_duration(std::string_view whole, std::string_view text) {
  if (text.empty()) {
    bad_recurrence(whole, "missing duration");
  }
  std::int64_t total = 0;
  while (!text.empty()) {
    if (!std::isdigit(static_cast<unsigned char>(text.front()))) {
      bad_recurrence(whole, "expected a number in '" + std::string(text) + "'");
    }
    std::int64_t count = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
    if (ec != std::errc{}) {
      bad_recurrence(whole, "the duration is too large");
    }
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    std::size_t letters = 0;
    while (letters < text.size() && std::isalpha(static_cast<unsigned char>(text[letters]))) {
      ++letters;
    }
    const auto suffix = text.substr(0, letters);
    const duration_unit* unit = nullptr;
    for (const auto& u : units) {
      if (u.suffix == suffix) {
        unit = &u;
      }
    }
    if (unit == nullptr) {
      bad_recurrence(whole, suffix.empty() ? std::string("missing unit (d, h, m, s, ms, us)")
                                           : "unknown unit '" + std::string(suffix) +
                                                 "' (expected d, h, m, s, ms, us)");
    }
    text.remove_prefix(letters);
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    if (count > (max - total) / unit->micros) {
      bad_recurrence(whole, "the duration is too large");
    }
    total += count * unit->micros;
  }
  if (total == 0) {
    bad_recurrence(whole, "the interval must be positive");
  }
  return microseconds{total};
}

/// The fields of a cron expression joined by single spaces (validated by parsing).
std::string normalized_cron(std::string_view text) {
  const cron_expression parsed(text);  // throws std::invalid_argument naming the field
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i])) {
      ++i;
    }
    const auto start = i;
    while (i < text.size() && !is_blank(text[i])) {
      ++i;
    }
    if (i > start) {
      if (!out.empty()) {
        out += ' ';
      }
      out += text.substr(start, i - start);
    }
  }
  return out;
}

/// A cron recurrence from "[TZ=zone] m h dom mon dow" (CRON_TZ= also accepted): the zone is
/// checked against the tz database, the expression parsed and normalized.
cron parse_cron(std::string_view whole, std::string_view text) {
  text = trim(text);
  std::string zone;
  for (const std::string_view prefix : {"TZ=", "CRON_TZ="}) {
    if (text.substr(0, prefix.size()) == prefix) {
      std::size_t end = prefix.size();
      while (end < text.size() && !is_blank(text[end])) {
        ++end;
      }
      zone = std::string(text.substr(prefix.size(), end - prefix.size()));
      if (zone.empty()) {
        bad_recurrence(whole, "missing time zone after " + std::string(prefix));
      }
      try {
        check_time_zone(zone);
      } catch (const std::invalid_argument& e) {
        bad_recurrence(whole, e.what());
      }
      text = trim(text.substr(end));
      break;
    }
  }
  return cron{normalized_cron(text), std::move(zone)};
}

std::string format_period(microseconds period) {
  const std::int64_t count = period.count();
  if (count == 0) {
    return "0s";
  }
  for (const auto& u : units) {
    if (count % u.micros == 0) {
      return std::to_string(count / u.micros) + std::string(u.suffix);
    }
  }
  return std::to_string(count) + "us";  // unreachable: 1 divides everything
}

}  // namespace

std::string_view to_string(task_state state) noexcept {
  switch (state) {
    case task_state::scheduled:
      return "scheduled";
    case task_state::in_flight:
      return "in_flight";
    case task_state::dead:
      return "dead";
    case task_state::unknown:
      break;
  }
  return "unknown";
}

void validate(const retry_backoff& b, const std::string& what) {
  if (b.initial.count() <= 0 || b.max < b.initial || !(b.multiplier >= 1.0) ||
      !(b.jitter >= 0.0 && b.jitter <= 1.0)) {
    throw std::invalid_argument(what + ": the retry backoff needs initial > 0, max >= initial, " +
                                "multiplier >= 1 and jitter in [0, 1]");
  }
}

std::string_view to_string(priority p) noexcept {
  switch (p) {
    case priority::low:
      return "low";
    case priority::high:
      return "high";
    case priority::normal:
      break;
  }
  return "normal";
}

priority parse_priority(std::string_view text) {
  for (const auto p : {priority::low, priority::normal, priority::high}) {
    if (text == to_string(p)) {
      return p;
    }
  }
  throw std::invalid_argument("priority: '" + std::string(text) +
                              "' is not one of low, normal, high");
}

std::optional<time_point> next_occurrence(const recurrence& r, time_point after) {
  if (const auto* every = std::get_if<interval>(&r)) {
    if (every->period <= microseconds::zero()) {
      throw std::invalid_argument("recurrence: the interval must be positive, got " +
                                  std::to_string(every->period.count()) + "us");
    }
    return after + every->period;
  }
  if (const auto* expression = std::get_if<cron>(&r)) {
    return cron_expression(expression->expression).next_after(after, expression->zone);
  }
  return std::nullopt;
}

std::optional<time_point> next_run_after(const recurrence& r, time_point occurrence,
                                         time_point store_now) {
  auto next = next_occurrence(r, occurrence);
  if (!next || *next > store_now) {
    return next;
  }
  if (const auto* every = std::get_if<interval>(&r)) {
    return occurrence + every->period * ((store_now - occurrence) / every->period);
  }
  // Cron: walk to the latest occurrence at or before store_now. The walk is bounded (a
  // minute-granular expression missed for months); past the bound, the next one from now.
  for (int step = 0; step < 1'000'000; ++step) {
    const auto after = next_occurrence(r, *next);
    if (!after || *after > store_now) {
      return next;
    }
    next = after;
  }
  return next_occurrence(r, store_now);
}

std::string describe(const recurrence& r) {
  if (const auto* every = std::get_if<interval>(&r)) {
    return "every " + format_period(every->period);
  }
  if (const auto* expression = std::get_if<cron>(&r)) {
    return expression->zone.empty() ? "cron " + expression->expression
                                    : "cron TZ=" + expression->zone + " " + expression->expression;
  }
  return {};
}

recurrence parse_recurrence(std::string_view text) {
  const auto body = trim(text);
  if (body.empty()) {
    return std::monostate{};
  }
  if (const auto rest = after_keyword(body, "cron")) {
    return parse_cron(text, *rest);
  }
  if (const auto rest = after_keyword(body, "every")) {
    return interval{parse_duration(text, *rest)};
  }
  if (body == "cron" || body == "every") {
    bad_recurrence(text, body == "cron" ? "missing cron expression" : "missing duration");
  }
  // A bare 5-field expression ("*/5 * * * *", "TZ=Europe/Berlin 0 9 * * *") is a cron; a
  // bare word a duration ("30s").
  for (const char c : body) {
    if (is_blank(c)) {
      try {
        return parse_cron(text, body);
      } catch (const std::invalid_argument& e) {
        bad_recurrence(text, std::string("expected 'every <duration>', a duration like 30s, or a "
                                         "cron expression: ") +
                                 e.what());
      }
    }
  }
  return interval{parse_duration(text, body)};
}

}  // namespace corvo::schedule
