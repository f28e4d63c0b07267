#pragma once
// The stream retention job: a recurring task on corvo's own scheduler that trims streams by
// age with safe_trim (trim.hpp), so it never removes an entry still pending in a group (nor,
// by default, one a group has not read yet). Being a scheduler task, it runs once per
// occurrence however many processes register it (docs/scheduler.md: recurring tasks).
//
//   stream::retention_job retention(redis, stream::retention_options::from(cfg));
//   retention.register_handler(s.handlers());          // s: a schedule::scheduler
//   co_await retention.ensure_scheduled(s.tasks());    // every process may call it
//
// Configuration (`stream.retention`; any other key below it is a config_error):
//   streams           list of stream keys to trim (required, non-empty)
//   max_age           entries older than this are trimmed (default "1440h": 60 days)
//   schedule          "cron M H DOM MON DOW" (UTC) or "every DURATION"
//                     (default "cron 0 10 * * *": daily at 10:00 UTC)
//   trim_undelivered  also trim entries a group has not read yet (default false)
//   task_id           the scheduler task's id (default "corvo.stream.retention"); two jobs
//                     with different streams need different ids
//
// A run trims each stream in turn and logs (channel "stream.retention") what it trimmed and
// what kept entries back. A missing stream is skipped (logged at info). A key of another
// type is logged as an error and skipped: retrying cannot fix it. Any other failure (Redis
// unreachable) is logged and, after the other streams were tried, fails the run, so the
// scheduler retries it with backoff; trimming twice is harmless.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/schedule/store.hpp>
#include <corvo/stream/trim.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace corvo::stream {

struct retention_options {
  std::vector<std::string> streams;
  std::chrono::milliseconds max_age = std::chrono::hours(24 * 60);
  /// Recurrence text, as schedule::parse_recurrence reads it.
  std::string schedule = "cron 0 10 * * *";
  bool trim_undelivered = false;
  std::string task_id = "corvo.stream.retention";

  /// Reads the `stream.retention` section (see the file comment). Throws config_error
  /// naming the key for a bad value, an empty stream list, a bad schedule or an unknown key.
  static retention_options from(const corvo::config& cfg);
};

/// A stream a run could not trim.
struct retention_failure {
  std::string stream;
  std::string error;
  /// False for a key of another type (retrying cannot help); true otherwise.
  bool retryable = true;
};

/// What one run did.
struct retention_run {
  /// The occurrence it ran for (the task's occurrence; zero when run_once was called
  /// directly).
  schedule::time_point occurrence{};
  /// One per stream that was trimmed.
  std::vector<trim_result> trimmed;
  /// Streams that do not exist (nothing to trim).
  std::vector<std::string> missing;
  /// Streams that failed.
  std::vector<retention_failure> failed;
};

class retention_job {
 public:
  /// The scheduler task type of the job.
  static constexpr std::string_view task_type = "corvo.stream.retention";

  /// `redis` must outlive the job. Throws std::invalid_argument for a bad schedule.
  retention_job(redis::client& redis, retention_options options);

  const retention_options& options() const noexcept { return options_; }

  /// Registers the job's handler for task_type. The job must outlive the registry's use.
  void register_handler(schedule::handler_registry& handlers);

  /// Makes sure the recurring task exists with this job's recurrence: leaves a live task
  /// of the same type and recurrence alone (so every process can call this at start
  /// without moving the schedule), else (re)schedules it for the next occurrence.
  asio::awaitable<void> ensure_scheduled(schedule::store& tasks);

  /// Trims every configured stream now (what the task's handler does). Does not throw for
  /// a stream's failure: see retention_run::failed.
  asio::awaitable<retention_run> run_once(schedule::time_point occurrence = {});

  /// Called after each run of the handler (tests, metrics), on the handler's executor.
  void on_run(std::function<void(const retention_run&)> observer) {
    observer_ = std::move(observer);
  }

 private:
  struct handler;

  asio::awaitable<void> handle(schedule::time_point occurrence);

  redis::client* redis_;
  retention_options options_;
  schedule::recurrence repeat_;
  std::function<void(const retention_run&)> observer_;
};

}  // namespace corvo::stream
