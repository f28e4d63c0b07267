#include <boost/system/system_error.hpp>
#include <corvo/core/log.hpp>
#include <corvo/stream/retention.hpp>
#include <stdexcept>

namespace corvo::stream {
namespace {

constexpr std::string_view channel = "stream.retention";

// Tries a failed run gets before the scheduler dead-letters the task (which would end the
// recurrence): a Redis outage of a few hours must not end retention for good.
constexpr std::uint32_t max_attempts = 100;

std::string describe(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

retention_options retention_options::from(const corvo::config& cfg) {
  retention_options o;
  const auto section = cfg.section("stream.retention");
  o.streams = section.get<std::vector<std::string>>("streams");
  if (o.streams.empty()) {
    throw config_error("stream.retention.streams",
                       "key 'stream.retention.streams' must name at least one stream");
  }
  o.max_age = section.get_or<std::chrono::milliseconds>("max_age", o.max_age);
  o.schedule = section.get_or<std::string>("schedule", o.schedule);
  o.trim_undelivered = section.get_or<bool>("trim_undelivered", o.trim_undelivered);
  o.task_id = section.get_or<std::string>("task_id", o.task_id);
  try {
    const auto r = schedule::parse_recurrence(o.schedule);
    if (std::holds_alternative<std::monostate>(r)) {
      throw std::invalid_argument("no recurrence");
    }
    schedule::next_occurrence(r, schedule::now());
  } catch (const std::invalid_argument& e) {
    throw config_error("stream.retention.schedule",
                       "key 'stream.retention.schedule' must be \"cron M H DOM MON DOW\" or "
                       "\"every DURATION\", got \"" +
                           o.schedule + "\": " + e.what());
  }
  cfg.reject_unknown_keys("stream.retention");
  return o;
}

struct retention_job::handler {
  retention_job* job;
  asio::awaitable<void> operator()(const schedule::claimed_task& t) const {
    return job->handle(t.work.occurrence);
  }
};

retention_job::retention_job(redis::client& redis, retention_options options)
    : redis_(&redis),
      options_(std::move(options)),
      repeat_(schedule::parse_recurrence(options_.schedule)) {
  if (std::holds_alternative<std::monostate>(repeat_)) {
    throw std::invalid_argument("retention_job: schedule '" + options_.schedule +
                                "' is not a recurrence");
  }
  schedule::next_occurrence(repeat_, schedule::now());  // validates a cron expression now
}

void retention_job::register_handler(schedule::handler_registry& handlers) {
  handlers.on_task(std::string(task_type), handler{this});
}

asio::awaitable<void> retention_job::ensure_scheduled(schedule::store& tasks) {
  const auto existing = co_await tasks.get(options_.task_id);
  if (existing && existing->type == task_type && existing->repeat == repeat_ &&
      existing->state != schedule::task_state::dead) {
    co_return;
  }
  schedule::task t;
  t.id = options_.task_id;
  t.type = std::string(task_type);
  t.payload = boost::json::object{};
  t.repeat = repeat_;
  t.max_attempts = max_attempts;
  t.due = *schedule::next_occurrence(repeat_, schedule::now());
  CORVO_LOG(info, channel) << "scheduling " << t.id << " (" << schedule::describe(repeat_)
                           << "), first run at " << t.due.time_since_epoch().count() << " us";
  co_await tasks.schedule(std::move(t));
}

asio::awaitable<retention_run> retention_job::run_once(schedule::time_point occurrence) {
  retention_run run;
  run.occurrence = occurrence;
  for (const auto& stream : options_.streams) {
    trim_options trim;
    trim.max_age = options_.max_age;
    trim.trim_undelivered = options_.trim_undelivered;
    std::exception_ptr failure;
    bool retryable = true;
    try {
      auto r = co_await safe_trim(*redis_, stream, trim);
      CORVO_LOG(info, channel) << "trimmed " << r.trimmed << " entries of '" << stream << "' below "
                               << r.min_id << " (asked " << r.requested_min_id
                               << (r.limited_by == trim_limit::none
                                       ? std::string()
                                       : "; kept back by " + std::string(to_string(r.limited_by)) +
                                             " entries of group '" + r.limiting_group + "'")
                               << "), " << r.length << " left";
      run.trimmed.push_back(std::move(r));
      continue;
    } catch (const boost::system::system_error& e) {
      if (e.code() == admin_error::no_such_stream) {
        CORVO_LOG(info, channel) << "stream '" << stream << "' does not exist: nothing to trim";
        run.missing.push_back(stream);
        continue;
      }
      retryable = e.code() != admin_error::wrong_type;
      failure = std::current_exception();
    } catch (...) {
      failure = std::current_exception();
    }
    const auto why = describe(failure);
    CORVO_LOG(error, channel) << "trimming '" << stream << "' failed: " << why;
    retention_failure failed;
    failed.stream = stream;
    failed.error = why;
    failed.retryable = retryable;
    run.failed.push_back(std::move(failed));
  }
  co_return run;
}

asio::awaitable<void> retention_job::handle(schedule::time_point occurrence) {
  auto run = co_await run_once(occurrence);
  if (observer_) {
    observer_(run);
  }
  for (const auto& f : run.failed) {
    if (f.retryable) {  // the scheduler retries the run with backoff
      throw std::runtime_error("stream retention: trimming '" + f.stream + "' failed: " + f.error);
    }
  }
}

}  // namespace corvo::stream
