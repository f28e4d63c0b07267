#pragma once
// Structured concurrency for awaitables on one io_context.
//
// A task_group owns the coroutines spawned into it ("children"). Children share the group's
// cancellation: cancel() emits a cancellation to every running child. join() waits until
// every child has finished, and when the coroutine awaiting join() is itself cancelled, the
// cancellation is forwarded to the children and join() still waits for all of them, so a
// child never outlives the join that owns it. With failure_policy::fail_fast the first
// failing child cancels its siblings (in the same loop turn the failure is reported); with
// collect_errors siblings keep running and join() reports every failure.
//
// Threading: a group and its children run on one executor (one thread or a strand); the
// group is not thread-safe, like the io_context it is used with.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <stdexcept>
#include <vector>

namespace corvo {

namespace asio = boost::asio;

/// What a task_group does when a child fails (exits with an exception).
enum class failure_policy {
  /// Cancel the siblings at once; join() rethrows the first failure.
  fail_fast,
  /// Let the siblings run; join() throws task_group_error with every failure.
  collect_errors,
};

/// Construction options of a task_group.
struct task_group_options {
  /// Maximum number of children running at once; 0 means unbounded. spawn() suspends
  /// while the limit is reached.
  std::size_t max_in_flight = 0;
  failure_policy on_failure = failure_policy::fail_fast;
};

/// Thrown by task_group::join() under failure_policy::collect_errors when children failed.
class task_group_error : public std::runtime_error {
 public:
  explicit task_group_error(std::vector<std::exception_ptr> errors);
  /// The failures, in the order the children finished.
  const std::vector<std::exception_ptr>& errors() const noexcept { return errors_; }

 private:
  std::vector<std::exception_ptr> errors_;
};

/// A scope for child coroutines with shared cancellation, bounded parallelism and join.
class task_group {
 public:
  using executor_type = asio::any_io_executor;

  explicit task_group(executor_type executor, task_group_options options = {});

  /// Cancels children that are still running. It cannot wait for them: co_await join()
  /// before a group goes away; a group destroyed with running children logs an error.
  ~task_group();

  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  executor_type get_executor() const noexcept;

  /// Starts `child` in the group. Suspends while `max_in_flight` children are running.
  /// Returns false, without starting the child, when the group is stopping (cancelled, or
  /// a child failed under fail_fast) until the next join() completes.
  /// Cancellation (terminal): a spawn waiting for a free slot throws
  /// system_error(operation_aborted) and the child is not started.
  asio::awaitable<bool> spawn(asio::awaitable<void> child);

  /// Starts `child` now if a slot is free and the group is not stopping, and returns true;
  /// otherwise returns false and leaves `child` untouched (the caller may co_await spawn()
  /// with it). The same as spawn() without a coroutine frame and resumption of its own, for
  /// hot paths that start a child per item.
  bool try_spawn(asio::awaitable<void>& child);

  /// Waits until every child has finished, then resets the group for reuse.
  /// fail_fast: rethrows the first child failure. collect_errors: throws task_group_error.
  /// Cancellations of children caused by the group itself are not failures.
  /// Cancellation (terminal): cancels the children, still waits for all of them, then
  /// throws system_error(operation_aborted).
  asio::awaitable<void> join();

  /// Like join(), but gives up waiting after `timeout` and returns false; the children keep
  /// running and the group is unchanged. Returns true when join() completed.
  asio::awaitable<bool> join_for(std::chrono::steady_clock::duration timeout);

  /// Waits until no child is running, without consuming failures or resetting the group.
  /// Cancellation (terminal): throws system_error(operation_aborted); children untouched.
  asio::awaitable<void> wait_idle();

  /// Emits `type` cancellation to every running child and marks the group stopping.
  void cancel(asio::cancellation_type type = asio::cancellation_type::terminal);

  /// Number of children running now.
  std::size_t in_flight() const noexcept;

  /// True after cancel() or a fail_fast failure, until the next join() completes.
  bool stopping() const noexcept;

  /// Failures recorded since the last join(), in order.
  const std::vector<std::exception_ptr>& failures() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace corvo
