#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <chrono>
#include <corvo/schedule/cron_expression.hpp>
#include <stdexcept>
#include <vector>

namespace corvo::schedule {
namespace {

using namespace std::chrono;

constexpr std::array<std::string_view, 12> month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> weekday_names = {"SUN", "MON", "TUE", "WED",
                                                           "THU", "FRI", "SAT"};

struct field_spec {
  const char* name;
  int min;
  int max;
  /// Names of the values from `first_named` on, or empty.
  const std::string_view* names = nullptr;
  std::size_t name_count = 0;
  int first_named = 0;
};

constexpr field_spec minute_field{"minute", 0, 59};
constexpr field_spec hour_field{"hour", 0, 23};
constexpr field_spec day_of_month_field{"day-of-month", 1, 31};
constexpr field_spec month_field{"month", 1, 12, month_names.data(), month_names.size(), 1};
constexpr field_spec day_of_week_field{"day-of-week",        0, 7, weekday_names.data(),
                                       weekday_names.size(), 0};

class field_parser {
 public:
  field_parser(std::string_view expression, const field_spec& spec, std::string_view field)
      : expression_(expression), spec_(spec), field_(field) {}

  /// Bit v set for every value v the field allows.
  std::uint64_t parse() const {
    std::uint64_t mask = 0;
    std::string_view rest = field_;
    for (;;) {
      const auto comma = rest.find(',');
      mask |= parse_item(rest.substr(0, comma));
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
    return mask;
  }

 private:
  [[noreturn]] void fail(std::string_view token, std::string_view reason) const {
    throw std::invalid_argument("cron expression '" + std::string(expression_) + "': " +
                                spec_.name + " field '" + std::string(field_) + "': bad token '" +
                                std::string(token) + "' (" + std::string(reason) + ")");
  }

  std::string range_text() const {
    return "allowed " + std::to_string(spec_.min) + "-" + std::to_string(spec_.max);
  }

  int parse_value(std::string_view token) const {
    if (token.empty()) {
      fail(token, "empty value");
    }
    if (std::isdigit(static_cast<unsigned char>(token.front()))) {
      int value = 0;
      const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
      if (ec != std::errc{} || end != token.data() + token.size()) {
        fail(token, "not a number");
      }
      if (value < spec_.min || value > spec_.max) {
        fail(token, "out of range, " + range_text());
      }
      return value;
    }
    if (spec_.names == nullptr) {
      fail(token, "not a number");
    }
    if (token.size() == 3) {
      for (std::size_t i = 0; i < spec_.name_count; ++i) {
        const auto name = spec_.names[i];
        bool same = true;
        for (std::size_t c = 0; c < 3; ++c) {
          same = same && std::toupper(static_cast<unsigned char>(token[c])) == name[c];
        }
        if (same) {
          return spec_.first_named + static_cast<int>(i);
        }
      }
    }
    fail(token, std::string("unknown name, expected ") + std::string(spec_.names[0]) + "-" +
                    std::string(spec_.names[spec_.name_count - 1]));
  }

  std::uint64_t parse_item(std::string_view item) const {
    if (item.empty()) {
      fail(item, "empty list item");
    }
    std::string_view base = item;
    int step = 1;
    const auto slash = item.find('/');
    const bool has_step = slash != std::string_view::npos;
    if (has_step) {
      base = item.substr(0, slash);
      const auto step_text = item.substr(slash + 1);
      const auto [end, ec] =
          std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      if (step_text.empty() || ec != std::errc{} || end != step_text.data() + step_text.size()) {
        fail(item, "the step is not a number");
      }
      if (step < 1 || step > spec_.max) {
        fail(item, "the step must be 1-" + std::to_string(spec_.max));
      }
    }
    int low = spec_.min;
    int high = spec_.max;
    if (base != "*") {
      if (const auto dash = base.find('-'); dash != std::string_view::npos) {
        low = parse_value(base.substr(0, dash));
        high = parse_value(base.substr(dash + 1));
        if (low > high) {
          fail(item, "the range's start is after its end");
        }
      } else {
        low = parse_value(base);
        // `5/15` steps from 5 to the end of the field; a lone value is just itself.
        high = has_step ? spec_.max : low;
      }
    }
    std::uint64_t mask = 0;
    for (int v = low; v <= high; v += step) {
      mask |= std::uint64_t{1} << v;
    }
    return mask;
  }

  std::string_view expression_;
  const field_spec& spec_;
  std::string_view field_;
};

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

cron_expression::cron_expression(std::string_view text) : text_(text) {
  std::vector<std::string_view> fields;
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
      fields.push_back(text.substr(start, i - start));
    }
  }
  if (fields.size() != 5) {
    throw std::invalid_argument("cron expression '" + std::string(text) +
                                "': expected 5 fields (minute hour day-of-month month "
                                "day-of-week), got " +
                                std::to_string(fields.size()));
  }
  minutes_ = std::bitset<60>(field_parser(text, minute_field, fields[0]).parse());
  hours_ = std::bitset<24>(field_parser(text, hour_field, fields[1]).parse());
  days_of_month_ = std::bitset<32>(field_parser(text, day_of_month_field, fields[2]).parse());
  months_ = std::bitset<13>(field_parser(text, month_field, fields[3]).parse());
  auto weekdays = field_parser(text, day_of_week_field, fields[4]).parse();
  if (weekdays & (std::uint64_t{1} << 7)) {
    weekdays = (weekdays | 1u) & ~(std::uint64_t{1} << 7);  // 7 is Sunday too
  }
  days_of_week_ = std::bitset<7>(weekdays);
  dom_restricted_ = fields[2].front() != '*';
  dow_restricted_ = fields[4].front() != '*';
}

std::uint32_t cron_expression::matching_days(int y, unsigned m) const noexcept {
  const year_month ym{year{y}, month{m}};
  const unsigned length = static_cast<unsigned>((ym / last).day());
  const unsigned first_weekday = weekday{sys_days{ym / 1}}.c_encoding();  // 0 = Sunday
  std::uint32_t by_month_day = 0;
  std::uint32_t by_weekday = 0;
  for (unsigned d = 1; d <= length; ++d) {
    if (days_of_month_[d]) {
      by_month_day |= std::uint32_t{1} << d;
    }
    if (days_of_week_[(first_weekday + d - 1) % 7]) {
      by_weekday |= std::uint32_t{1} << d;
    }
  }
  return dom_restricted_ && dow_restricted_ ? (by_month_day | by_weekday)
                                            : (by_month_day & by_weekday);
}

bool cron_expression::matches(time_point t) const noexcept {
  const auto minute = floor<std::chrono::minutes>(t);
  const auto day = floor<days>(minute);
  const year_month_day ymd{day};
  const auto since_midnight = minute - day;
  const auto h =
      static_cast<std::size_t>(duration_cast<std::chrono::hours>(since_midnight).count());
  const auto m = static_cast<std::size_t>((since_midnight % std::chrono::hours{1}).count());
  const auto mon = static_cast<unsigned>(ymd.month());
  const auto d = static_cast<unsigned>(ymd.day());
  return months_[mon] && ((matching_days(static_cast<int>(ymd.year()), mon) >> d) & 1u) != 0 &&
         hours_[h] && minutes_[m];
}

time_point cron_expression::next_after(time_point after) const {
  const auto start = floor<std::chrono::minutes>(after) + std::chrono::minutes{1};
  const auto start_day = floor<days>(start);
  const year_month_day ymd{start_day};
  const auto since_midnight = start - start_day;
  int y = static_cast<int>(ymd.year());
  unsigned mon = static_cast<unsigned>(ymd.month());
  // Before this position (day, hour, minute) of the current month nothing may match.
  unsigned from_day = static_cast<unsigned>(ymd.day());
  int from_hour = static_cast<int>(duration_cast<std::chrono::hours>(since_midnight).count());
  int from_minute = static_cast<int>((since_midnight % std::chrono::hours{1}).count());
  const int last_year = y + 400;
  if (y < -32000 || last_year > 32000) {
    throw std::invalid_argument("cron expression '" + text_ + "': time out of range");
  }
  for (; y <= last_year; from_day = 1, from_hour = 0, from_minute = 0) {
    if (months_[mon]) {
      std::uint32_t days_left = matching_days(y, mon) & (~std::uint32_t{0} << from_day);
      for (; days_left != 0; days_left &= days_left - 1) {
        const auto d = static_cast<unsigned>(std::countr_zero(days_left));
        const bool first_day = d == from_day;
        for (int h = first_day ? from_hour : 0; h < 24; ++h) {
          if (!hours_[static_cast<std::size_t>(h)]) {
            continue;
          }
          const bool first_hour = first_day && h == from_hour;
          for (int m = first_hour ? from_minute : 0; m < 60; ++m) {
            if (minutes_[static_cast<std::size_t>(m)]) {
              return sys_days{year{y} / month{mon} / day{d}} + std::chrono::hours{h} +
                     std::chrono::minutes{m};
            }
          }
        }
      }
    }
    if (++mon == 13) {
      mon = 1;
      ++y;
    }
  }
  throw std::invalid_argument("cron expression '" + text_ +
                              "' matches no time (searched 400 years, a full calendar cycle)");
}

}  // namespace corvo::schedule
