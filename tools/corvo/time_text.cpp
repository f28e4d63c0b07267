// Times on the command line and in exported tasks (time_text.hpp).
#include "time_text.hpp"

#include <cctype>
#include <charconv>
#include <ctime>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace corvo::tool {

using schedule::time_point;

std::string iso8601(time_point t) {
  const auto us = t.time_since_epoch().count();
  const std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << '.' << std::setw(6) << std::setfill('0')
      << us % 1'000'000 << 'Z';
  return out.str();
}

// ISO 8601 with a zone: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM|-HHMM), or
// microseconds since the epoch.
time_point parse_time(const std::string& text, std::string_view what) {
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument(std::string(what) + " '" + text + "' " + why +
                                 " (expected e.g. 2026-11-22T10:00:00Z or "
                                 "2026-11-22T12:00:00+02:00)");
  };
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    return time_point(std::chrono::microseconds(std::stoll(text)));
  }
  std::string_view rest(text);
  const auto number = [&](std::size_t digits, int& out) {
    if (rest.size() < digits)
      return false;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + digits, out);
    if (ec != std::errc{} || end != rest.data() + digits)
      return false;
    rest.remove_prefix(digits);
    return true;
  };
  const auto literal = [&](char c) {
    if (rest.empty() || rest.front() != c)
      return false;
    rest.remove_prefix(1);
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!(number(4, y) && literal('-') && number(2, mo) && literal('-') && number(2, d) &&
        literal('T') && number(2, h) && literal(':') && number(2, mi) && literal(':') &&
        number(2, sec))) {
    throw bad("is not a time");
  }
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(mo),
                                         std::chrono::day(d)};
  if (!date.ok() || h > 23 || mi > 59 || sec > 59) {
    throw bad("is not a valid date and time");
  }
  std::chrono::microseconds fraction{0};
  if (literal('.')) {
    std::int64_t scale = 100'000;
    std::size_t digits = 0;
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      fraction += std::chrono::microseconds((rest.front() - '0') * scale);
      scale /= 10;
      rest.remove_prefix(1);
      ++digits;
    }
    if (digits == 0) {
      throw bad("has an empty fraction of a second");
    }
  }
  std::chrono::minutes offset{0};
  if (literal('Z')) {
  } else if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
    const int sign = rest.front() == '+' ? 1 : -1;
    rest.remove_prefix(1);
    int oh = 0, om = 0;
    const bool hours = number(2, oh);
    literal(':');  // +02:00 and +0200 alike
    if (!hours || !number(2, om) || oh > 23 || om > 59) {
      throw bad("has an invalid UTC offset");
    }
    offset = std::chrono::minutes(sign * (oh * 60 + om));
  } else {
    throw bad("needs a UTC offset or Z");
  }
  if (!rest.empty()) {
    throw bad("has trailing text '" + std::string(rest) + "'");
  }
  const auto local = std::chrono::sys_days(date) + std::chrono::hours(h) +
                     std::chrono::minutes(mi) + std::chrono::seconds(sec);
  return time_point(
      std::chrono::duration_cast<std::chrono::microseconds>((local - offset).time_since_epoch()) +
      fraction);
}

}  // namespace corvo::tool
