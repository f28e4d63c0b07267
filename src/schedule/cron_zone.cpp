// Cron expressions in an IANA time zone: the local-time search of cron_expression, mapped to
// UTC instants with the daylight-saving rules of cron_expression.hpp. The zone data comes
// from the system's tz database through Howard Hinnant's date/tz library (USE_OS_TZDB).
#include <date/tz.h>

#include <corvo/schedule/cron_expression.hpp>
#include <stdexcept>
#include <string>

namespace corvo::schedule {

namespace {

const date::time_zone* zone_named(std::string_view name) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    throw std::invalid_argument("unknown time zone '" + std::string(name) +
                                "' (IANA names such as Europe/Berlin, from the tz database in "
                                "/usr/share/zoneinfo: Debian package tzdata)");
  }
}

}  // namespace

void check_time_zone(std::string_view zone) {
  if (!zone.empty()) {
    zone_named(zone);
  }
}

time_point cron_expression::next_after(time_point after, std::string_view zone_name) const {
  if (zone_name.empty()) {
    return next_after(after);
  }
  const auto* zone = zone_named(zone_name);
  // The search runs on local wall-clock time, held in a time_point as if it were UTC.
  auto cursor = time_point{zone->to_local(after).time_since_epoch()};
  // Each round moves the cursor past one matching local minute; only minutes inside a
  // transition (at most a few hours' worth) are passed over, so this ends quickly.
  for (int round = 0; round < 100'000; ++round) {
    const auto candidate = next_after(cursor);
    const date::local_time<std::chrono::minutes> local{
        std::chrono::duration_cast<std::chrono::minutes>(candidate.time_since_epoch())};
    const auto info = zone->get_info(local);
    date::sys_seconds at;
    switch (info.result) {
      case date::local_info::unique:
      case date::local_info::ambiguous:  // the first occurrence: the earlier offset
        at = date::sys_seconds{local.time_since_epoch() - info.first.offset};
        break;
      case date::local_info::nonexistent:  // in a gap: the first instant after it
        at = info.second.begin;
        break;
    }
    const auto instant = std::chrono::time_point_cast<std::chrono::microseconds>(at);
    if (instant > after) {
      return instant;
    }
    cursor = candidate;
  }
  throw std::invalid_argument("cron expression '" + text_ + "' in " + std::string(zone_name) +
                              ": no firing time found");
}

}  // namespace corvo::schedule
