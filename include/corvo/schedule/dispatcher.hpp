#pragma once
// The dispatcher: claims due tasks from a store and hands them to a sink, in parallel.
//
// Each shard has its own claim loop, acker and lease renewer, so a shard whose store calls
// hang (its Redis master stopped) holds up only itself; with several shards one claim
// reserves at most half of the free slots (at least 1), so hung claims cannot take them all.
//
// One claim loop per shard sleeps until exactly the shard's next due time (or lease expiry,
// or the time a permit frees for tasks a limit holds back: claim_result::permit_at) as
// reported by the store, mapped from the store's clock onto the steady clock; it wakes
// early when a task lands ahead of the head (watch_wakes: any process; wake(): this one),
// and never sleeps longer than max_sleep (a safety net, not a poll). While a shard has a
// backlog it claims batch after batch. Claimed tasks run in one task_group bounded by
// max_in_flight; claims never take more tasks than there are free slots. A task the store
// handed out ahead of its due time (redis_store_options::claim_ahead) starts at its due
// time, mapped onto the steady clock the same way.
//
// Outcomes: success → ack (batched per shard; a recurring task is rescheduled at its next
// occurrence); permanent_error or attempts exhausted → dead-letter with the reason; other
// failures → back to due after exponential backoff (the task's retry, else its type's policy,
// else retry_backoff with full jitter). A handler failing with
// operation_aborted is an ordinary failure. A run longer than its timeout (task::timeout,
// else its type's run_timeout, else run_timeout) is cancelled and counted as a failed attempt.
// Leases of long runs are renewed every lease/3 until the run ends, draining included; a run whose
// lease is lost (the task was cancelled or replaced, the renewal refused, or no renewal got through
// before the lease ran out here) is cancelled and counted in lease_lost. Store errors (Redis
// restarting) are logged and retried with backoff; nothing is lost, because an unacknowledged task
// comes back when its lease expires.
//
// Stopping (cancel the coroutine awaiting run()): claiming stops at once, in-flight tasks get
// `drain_timeout` to finish, their leases still renewed (then the dispatcher cancels them and
// hands them back to the store, uncounted: only this cut is a stop), finished tasks are
// acknowledged, then run() throws operation_aborted.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/schedule/store.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace corvo::schedule {

/// The settings of one task type (`scheduler.types.<type>`); each unset field falls back to
/// the dispatcher's, and a task's own field (task::retry, task::timeout, task::max_attempts)
/// overrides its type's.
struct type_policy {
  std::optional<retry_backoff> retry;
  std::optional<std::chrono::milliseconds> run_timeout;
  /// Applied when the task is scheduled (scheduler::schedule and the like), to a task whose
  /// max_attempts is 0.
  std::optional<std::uint32_t> max_attempts;
  /// Global limits of the type across every process (limits.hpp): runs at once (>= 1) and
  /// starts per window. run() hands them to the store (store::set_limits).
  std::optional<std::uint32_t> concurrency;
  std::optional<rate_limit> rate;
};

/// The limits of `types` (the types with a concurrency or a rate).
type_limits limits_of(const std::map<std::string, type_policy, std::less<>>& types);

struct dispatcher_options {
  std::size_t max_in_flight = 64;
  /// Most tasks taken by one claim.
  std::size_t claim_batch = 256;
  std::chrono::milliseconds lease{30'000};
  /// Longest sleep without a claim, whatever the store said (a safety net).
  std::chrono::milliseconds max_sleep{1000};
  /// Delay before retry n is drawn from [0, min(max, initial·2^(n-1))].
  backoff_policy retry_backoff{std::chrono::milliseconds{1000}, std::chrono::milliseconds{300'000}};
  /// How long in-flight tasks may take to finish when the dispatcher stops.
  std::chrono::milliseconds drain_timeout{10'000};
  /// Longest run of a task without its own `timeout`; 0: no limit. A run past it is
  /// cancelled and counted as a failed attempt.
  std::chrono::milliseconds run_timeout{600'000};
  /// Per task type: retry backoff and run timeout (see type_policy).
  std::map<std::string, type_policy, std::less<>> types;
  /// Pause between attempts while the store fails (Redis down).
  backoff_policy store_retry{std::chrono::milliseconds{50}, std::chrono::milliseconds{2000}};
  /// Consulted before every claim of a shard: false pauses that shard's claim loop (checked
  /// again every 100 ms, no store call meanwhile) while the other shards go on, e.g. while
  /// the Redis master that owns the shard's keys is down (health::shard_gate). Runs already
  /// claimed continue. Empty: every shard is always available.
  std::function<bool(unsigned shard)> shard_available;
};

struct dispatcher_stats {
  std::uint64_t claims = 0;         ///< claim calls
  std::uint64_t claimed = 0;        ///< tasks claimed
  std::uint64_t succeeded = 0;      ///< runs acknowledged
  std::uint64_t retried = 0;        ///< runs failed and sent back with backoff
  std::uint64_t dead_lettered = 0;  ///< runs sent to the dead-letter set
  std::uint64_t stale = 0;          ///< acks/nacks refused: the lease had been lost
  std::uint64_t wakes = 0;          ///< early wake-ups
  std::uint64_t store_errors = 0;   ///< store calls that failed (and were retried)
  std::uint64_t timed_out = 0;      ///< runs cancelled at their run timeout (also retried/dead)
  std::uint64_t lease_lost = 0;     ///< runs cancelled because their lease was lost
};

class dispatcher {
 public:
  /// Called on the dispatcher's executor right before the sink gets a task (measuring
  /// lateness, tracing).
  using start_observer = std::function<void(const claimed_task&)>;

  dispatcher(store& tasks, sink& out, dispatcher_options options = {});
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  /// Runs until cancelled (see the file comment); throws operation_aborted then.
  asio::awaitable<void> run();

  /// Wakes the claim loop of `shard` now (after a local schedule()); no-op when not running.
  void wake(unsigned shard);

  /// Adds an observer (metrics and the dashboard each add one); all are called, in the
  /// order they were added.
  void on_start(start_observer observer);

  const dispatcher_stats& stats() const noexcept;
  const dispatcher_options& options() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
