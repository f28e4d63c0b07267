// store::schedule_many: bulk scheduling over any store, a bounded window of schedule() calls
// in flight.
#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/store.hpp>
#include <exception>
#include <stdexcept>

namespace corvo::schedule {

std::string_view to_string(dedup_outcome outcome) noexcept {
  switch (outcome) {
    case dedup_outcome::scheduled:
      return "scheduled";
    case dedup_outcome::replaced:
      return "replaced";
    case dedup_outcome::dropped:
      return "dropped";
  }
  return "unknown";
}

namespace {

struct bulk_failure {
  std::size_t position;  // in the input
  std::string id;
  std::string reason;
};

bool is_cancellation(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& error) {
    return error.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

std::string reason_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& error) {
    return error.what();
  } catch (...) {
    return "unknown exception";
  }
}

asio::awaitable<void> schedule_one(store& s, task t, std::size_t position,
                                   std::vector<bulk_failure>& failures) {
  std::string id = t.id;
  std::exception_ptr failure;
  try {
    co_await s.schedule(std::move(t));
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) {
    co_return;
  }
  if (is_cancellation(failure)) {
    std::rethrow_exception(failure);  // the group's join() reports the cancellation
  }
  failures.push_back({position, std::move(id), reason_of(failure)});
}

}  // namespace

schedule_many_error::schedule_many_error(std::vector<std::string> failed_ids,
                                         const std::string& first_reason)
    : std::runtime_error("schedule_many: " + std::to_string(failed_ids.size()) +
                         " task(s) not scheduled; first: " + first_reason),
      failed_ids_(std::move(failed_ids)) {}

asio::awaitable<void> store::schedule_many(std::vector<task> tasks, std::size_t window) {
  if (window == 0) {
    throw std::invalid_argument("schedule_many: the window must be at least 1");
  }
  // Failures only; each child keeps its id until it knows the outcome.
  std::vector<bulk_failure> failures;
  auto ex = co_await asio::this_coro::executor;
  task_group_options options;
  options.max_in_flight = window;
  options.on_failure = failure_policy::fail_fast;  // only a cancellation fails a child
  task_group group(ex, options);
  std::exception_ptr stopped;
  try {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (!co_await group.spawn(schedule_one(*this, std::move(tasks[i]), i, failures))) {
        break;  // a child saw the cancellation: join() reports it
      }
    }
  } catch (...) {
    stopped = std::current_exception();  // cancelled while waiting for a free slot
  }
  if (stopped) {
    // The children use `failures`: they must end before this frame does.
    group.cancel();
    co_await asio::this_coro::reset_cancellation_state();
    try {
      co_await group.join();
    } catch (...) {
    }
    std::rethrow_exception(stopped);
  }
  co_await group.join();
  if (failures.empty()) {
    co_return;
  }
  std::sort(failures.begin(), failures.end(),
            [](const bulk_failure& a, const bulk_failure& b) { return a.position < b.position; });
  const std::string first = failures.front().id + ": " + failures.front().reason;
  std::vector<std::string> failed;
  failed.reserve(failures.size());
  for (auto& f : failures) {
    failed.push_back(std::move(f.id));
  }
  throw schedule_many_error(std::move(failed), first);
}

void store::set_limits(type_limits limits) {
  for (const auto& [type, limit] : limits) {
    if (limit.limited()) {
      throw std::invalid_argument("this store cannot enforce limits (type '" + type + "')");
    }
  }
}

asio::awaitable<dedup_result> store::schedule_deduplicated_by_key(task t, std::string,
                                                                  dedup_options) {
  throw std::logic_error("task '" + t.id + "': this store has no deduplication by key");
  co_return dedup_result();
}

asio::awaitable<std::vector<limit_state>> store::limit_states() {
  co_return std::vector<limit_state>{};
}

}  // namespace corvo::schedule
