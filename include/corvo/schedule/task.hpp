#pragma once
// A scheduled task: what to run (type + JSON payload), when (due time), how often it may be
// tried, and whether it recurs.

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace corvo::schedule {

/// Microseconds since the Unix epoch (UTC): the unit of every due time and lease deadline.
using time_point = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

/// Now, at microsecond precision.
inline time_point now() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

/// Runs every `period`: occurrences at the first due time + k·period (see next_run_after).
struct interval {
  std::chrono::microseconds period{};
  friend bool operator==(const interval&, const interval&) = default;
};

/// A 5-field cron expression ("*/5 9-17 * * MON-FRI"), evaluated in UTC or in the IANA time
/// zone `zone` ("Europe/Berlin"; daylight-saving rules in cron_expression.hpp).
struct cron {
  std::string expression;
  /// Empty: UTC.
  std::string zone;
  friend bool operator==(const cron&, const cron&) = default;
};

using recurrence = std::variant<std::monostate, interval, cron>;

/// Delays between the tries of a failed task: before retry n (n >= 1) the ceiling is
/// c = min(max, initial * multiplier^(n-1)) and the delay is drawn uniformly from
/// [c * (1 - jitter), c] (jitter 1: full jitter, 0: exactly c).
struct retry_backoff {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{300'000};
  double multiplier = 2.0;
  double jitter = 1.0;
  friend bool operator==(const retry_backoff&, const retry_backoff&) = default;
};

/// Throws std::invalid_argument naming `what` unless initial > 0, max >= initial,
/// multiplier >= 1 and 0 <= jitter <= 1.
void validate(const retry_backoff& b, const std::string& what);

/// What a task's max_attempts 0 means when neither the task nor its type sets one.
inline constexpr std::uint32_t default_max_attempts = 5;

/// Which of the tasks due at a moment is claimed first (docs/scheduler.md, "Priorities").
/// Among due tasks, a claim takes them in the order of their due time minus a boost of
/// `aging` (store option, default 10 s) per level above normal, plus the same per level
/// below: a higher level goes first among tasks that came due together (a backlog, a
/// burst), and a lower-level task is passed over only by higher-level tasks that came due
/// less than `aging` per level of difference after it, so it is never starved.
enum class priority : std::int8_t { low = -1, normal = 0, high = 1 };

/// "low" / "normal" / "high".
std::string_view to_string(priority p) noexcept;
/// Parses what to_string prints; throws std::invalid_argument otherwise.
priority parse_priority(std::string_view text);

/// Where a task is in its life.
enum class task_state { scheduled, in_flight, dead, unknown };

struct task {
  /// Unique within a namespace; scheduling an existing id replaces that task (upsert).
  std::string id;
  /// Selects the handler.
  std::string type;
  boost::json::value payload;
  /// When it becomes due (µs precision).
  time_point due{};
  /// Tries before the task goes to the dead-letter set. 0 (the default): the type's policy
  /// (`scheduler.types.<type>.max_attempts`, applied by the scheduler), else
  /// default_max_attempts; a store given 0 stores default_max_attempts.
  std::uint32_t max_attempts = 0;
  recurrence repeat{};
  /// Longest a run may take before it is cancelled and counted as a failed attempt; unset:
  /// the type's policy (`scheduler.types.<type>.run_timeout`), else the dispatcher's
  /// run_timeout (`scheduler.run_timeout`).
  std::optional<std::chrono::milliseconds> timeout;
  /// Delays between its tries; unset: the type's policy (`scheduler.types.<type>`), else the
  /// dispatcher's retry_backoff. Stored with the task only when set.
  std::optional<retry_backoff> retry;
  /// Claim order among due tasks (normal costs nothing: such a task's record and keys are
  /// as before priorities existed).
  schedule::priority priority = priority::normal;
  /// W3C trace context of whoever scheduled the task (core/trace.hpp), or empty: none (no
  /// byte more in the record). Carried to every run of the task (the Kafka sink sends it as
  /// the header "traceparent"); handlers read it here and log it with CORVO_LOG_TRACED.
  /// Scheduling a task with an invalid one throws std::invalid_argument.
  std::string traceparent;

  // Maintained by the scheduler, read by get()/browse():
  /// Tries started so far (a claim counts, including one whose worker died).
  std::uint32_t attempts = 0;
  /// The reason of the last failure, or of the dead-lettering.
  std::string last_error;
  /// The scheduled time of the occurrence this run belongs to: the due time the task was
  /// scheduled (or rescheduled) for, or the occurrence its recurrence computed. Retries and
  /// lease expiries move `due`, never this; handlers tell occurrences apart by it. Set by
  /// the store (schedule() sets it to `due`).
  time_point occurrence{};
  task_state state = task_state::unknown;
};

std::string_view to_string(task_state state) noexcept;

/// The next occurrence of `r` strictly after `after`, or nullopt for a one-off task.
/// Throws std::invalid_argument for an invalid cron expression.
std::optional<time_point> next_occurrence(const recurrence& r, time_point after);

/// The occurrence that follows a run of `occurrence`, judged at `store_now` (the store's
/// clock when the run finished): the next occurrence of `r` after `occurrence`; when that is
/// already past, the latest occurrence at or before `store_now` (occurrences missed while
/// nothing ran are coalesced into one run, and none is run twice). Nullopt for a one-off
/// task. Throws std::invalid_argument for an invalid recurrence.
std::optional<time_point> next_run_after(const recurrence& r, time_point occurrence,
                                         time_point store_now);

/// "every 30s" / "cron */5 * * * *" / "cron TZ=Europe/Berlin 0 9 * * *" / "" — for logs,
/// the command line and the stored record.
std::string describe(const recurrence& r);

/// Parses what describe() prints (and "30s", "5m" as intervals; CRON_TZ= for TZ=). Throws
/// std::invalid_argument naming what is wrong (an unknown time zone included).
recurrence parse_recurrence(std::string_view text);

}  // namespace corvo::schedule
