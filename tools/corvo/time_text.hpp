#pragma once
// Times as the `corvo` commands print and read them: ISO 8601 in UTC with microseconds.

#include <corvo/schedule/task.hpp>
#include <string>
#include <string_view>

namespace corvo::tool {

/// `t` as 2026-11-22T10:00:00.000123Z (UTC, microseconds: exact).
std::string iso8601(schedule::time_point t);

/// ISO 8601 with a zone: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM|-HHMM), or
/// microseconds since the epoch. Throws std::invalid_argument naming `what` (an option or a
/// field) and what is wrong.
schedule::time_point parse_time(const std::string& text, std::string_view what = "--at");

}  // namespace corvo::tool
