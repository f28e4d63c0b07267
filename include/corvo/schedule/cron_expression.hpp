#pragma once
// A parsed 5-field cron expression, evaluated in UTC or in an IANA time zone:
//
//   minute hour day-of-month month day-of-week
//   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
//
// Each field is a comma-separated list of items: `*`, a value `5`, a range `1-5`, a step
// over the whole field `*/15`, over a range `10-40/10` or from a value to the field's end
// `5/15`. Months take JAN-DEC and days of week SUN-SAT (case-insensitive), also in ranges.
//
// Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted
// (their text does not start with `*`), a day matches if EITHER matches; otherwise both must
// (a `*` field matches every day, `*/2` only its days). So `0 0 1 * MON` fires on the 1st and
// on every Monday, while `0 0 */2 * MON` fires on Mondays with an odd day of the month.
//
// Time zones (next_after with a zone name, from the system's tz database, Debian `tzdata`):
// the expression matches local wall-clock minutes, and each matching local minute fires
// exactly once, at its UTC instant. Daylight-saving transitions:
//   - a local time skipped by a spring-forward gap (02:30 in Europe/Berlin on the last Sunday
//     of March) fires once, at the first instant after the gap (03:00 local); all the
//     matching minutes of one gap collapse into that one run;
//   - a local time that occurs twice at a fall-back (02:30 on the last Sunday of October)
//     fires once, at its first occurrence (02:30 summer time); the repeated hour's second
//     pass fires nothing. An expression that runs every hour therefore skips the repeated
//     hour; use an interval recurrence (`every 1h`) for a period of real time.

#include <bitset>
#include <corvo/schedule/task.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace corvo::schedule {

class cron_expression {
 public:
  /// Parses `text`. Throws std::invalid_argument naming the field and the bad token (wrong
  /// field count, value out of range, bad step, unknown name, reversed range).
  explicit cron_expression(std::string_view text);

  /// The expression as given.
  const std::string& text() const noexcept { return text_; }

  /// The first matching minute strictly after `after` (seconds and below are zero). Skips
  /// whole months, days and hours that cannot match, so a search costs at most a few
  /// operations per month. Throws std::invalid_argument when the expression matches no time
  /// at all (`0 0 30 2 *`): the Gregorian calendar repeats every 400 years, so a search over
  /// 400 years from `after` that finds nothing proves no match exists.
  time_point next_after(time_point after) const;

  /// The first instant strictly after `after` at which the expression fires in the IANA
  /// time zone `zone` ("Europe/Berlin"), by the rules of the header comment; an empty `zone`
  /// is UTC (the overload above). Throws std::invalid_argument for an unknown zone, and as
  /// the overload above.
  time_point next_after(time_point after, std::string_view zone) const;

  /// True when the minute containing `t` matches.
  bool matches(time_point t) const noexcept;

  /// The values each field allows. Bits 0 of days_of_month and months are never set; day of
  /// week 7 is folded into bit 0 (Sunday).
  const std::bitset<60>& minutes() const noexcept { return minutes_; }
  const std::bitset<24>& hours() const noexcept { return hours_; }
  const std::bitset<32>& days_of_month() const noexcept { return days_of_month_; }
  const std::bitset<13>& months() const noexcept { return months_; }
  const std::bitset<7>& days_of_week() const noexcept { return days_of_week_; }
  /// Whether the day fields are restricted in the Vixie sense (text not starting with `*`).
  bool day_of_month_restricted() const noexcept { return dom_restricted_; }
  bool day_of_week_restricted() const noexcept { return dow_restricted_; }

  friend bool operator==(const cron_expression& a, const cron_expression& b) noexcept {
    return a.minutes_ == b.minutes_ && a.hours_ == b.hours_ &&
           a.days_of_month_ == b.days_of_month_ && a.months_ == b.months_ &&
           a.days_of_week_ == b.days_of_week_ && a.dom_restricted_ == b.dom_restricted_ &&
           a.dow_restricted_ == b.dow_restricted_;
  }

 private:
  /// Days of `month` of `year` (1-based bits) that match both day fields under the Vixie rule.
  std::uint32_t matching_days(int year, unsigned month) const noexcept;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;
  std::bitset<13> months_;
  std::bitset<7> days_of_week_;
  bool dom_restricted_ = false;
  bool dow_restricted_ = false;
};

/// Throws std::invalid_argument when `zone` is not a time zone of the system's tz database
/// (the message names it and where zones come from). An empty name is UTC and valid.
void check_time_zone(std::string_view zone);

}  // namespace corvo::schedule
