// store::schedule_many: bulk scheduling over any store, a bounded window of schedule() calls
// in flight.
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/store.hpp>
#include <exception>

namespace corvo::schedule {

namespace {

struct bulk_outcome {
  std::vector<bool> failed;  // by input position
  std::string first_reason;
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

asio::awaitable<void> schedule_one(store& s, task t, std::size_t position, bulk_outcome& out) {
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
  if (out.first_reason.empty()) {
    out.first_reason = id + ": " + reason_of(failure);
  }
  out.failed[position] = true;
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
  bulk_outcome outcome;
  outcome.failed.assign(tasks.size(), false);
  std::vector<std::string> ids;
  ids.reserve(tasks.size());
  for (const auto& t : tasks) {
    ids.push_back(t.id);
  }
  auto ex = co_await asio::this_coro::executor;
  task_group_options options;
  options.max_in_flight = window;
  options.on_failure = failure_policy::fail_fast;  // only a cancellation fails a child
  task_group group(ex, options);
  std::exception_ptr stopped;
  try {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (!co_await group.spawn(schedule_one(*this, std::move(tasks[i]), i, outcome))) {
        break;  // a child saw the cancellation: join() reports it
      }
    }
  } catch (...) {
    stopped = std::current_exception();  // cancelled while waiting for a free slot
  }
  if (stopped) {
    // The children use `outcome`: they must end before this frame does.
    group.cancel();
    co_await asio::this_coro::reset_cancellation_state();
    try {
      co_await group.join();
    } catch (...) {
    }
    std::rethrow_exception(stopped);
  }
  co_await group.join();
  std::vector<std::string> failed;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (outcome.failed[i]) {
      failed.push_back(std::move(ids[i]));
    }
  }
  if (!failed.empty()) {
    throw schedule_many_error(std::move(failed), outcome.first_reason);
  }
}

}  // namespace corvo::schedule
