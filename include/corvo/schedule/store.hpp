#pragma once
// Where scheduled tasks live: the durable Redis store (redis_store) or the in-process memory
// store (memory_store), behind one interface the dispatcher and the scheduler API use.
//
// A namespace is split into shards (task id -> shard by hash); claim/ack/nack/extend work on
// one shard at a time, so on Redis every call touches one hash slot.
//
// Leases and fencing: claim() moves due tasks to "in flight" with a lease deadline and a
// fresh token. Only the holder of the current token can ack/nack/extend; a worker whose
// lease expired (and whose task was claimed again) is refused silently (counted as stale).
// An expired lease makes the task claimable again: no task is lost when a worker dies. A
// task whose lease expires with its attempts used up (a worker died or hung on each try) is
// dead-lettered by the claim, with the reason "lease expired N times (worker died or hung)"
// (N: consecutive expiries). A record whose header does not parse is dead-lettered by the
// claim with the reason, and the shard goes on.
//
// Listing (browse, dead_letters) reads in bounded batches per round trip whatever the offset
// and limit; a page is not a snapshot (tasks moving meanwhile may be skipped or repeated).

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/schedule/event_counts.hpp>
#include <corvo/schedule/events.hpp>
#include <corvo/schedule/limits.hpp>
#include <corvo/schedule/task.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace corvo::schedule {

namespace asio = boost::asio;

/// A task handed to a worker; `token` fences its completion.
struct claimed_task {
  task work;  ///< attempts already counts this try
  /// With the task id, names this lease: never handed out again for the task. Opaque; tasks
  /// of one claim may share it (the Redis store: those due at the same time).
  std::string token;
  unsigned shard = 0;
  /// The store's clock when it was claimed (the Redis server's TIME): a rate limit counts
  /// the start at this time.
  time_point claimed_at{};
};

struct claim_result {
  std::vector<claimed_task> tasks;
  /// The store's clock when it claimed (the Redis server's TIME): due times compare to it.
  time_point store_now{};
  /// When to claim the shard again for what waits in it: the earliest due time left after
  /// this claim, or earlier when the store has work to do before that (a Redis store moves
  /// the tasks of its compact tier into its due sets compact_after before they are due:
  /// redis_store_options::compact). Unset: nothing waits.
  std::optional<time_point> next_due;
  /// How far ahead of store_now this claim took tasks (redis_store_options::claim_ahead;
  /// zero for a store that claims only what is due). A task due at next_due is claimable
  /// that much before it: the dispatcher claims a little earlier (twice the claim's round
  /// trip, at most half the window) and starts it at its due time.
  std::chrono::microseconds ahead{0};
  /// Earliest lease deadline in the shard (an expired lease makes its task claimable).
  std::optional<time_point> next_lease_expiry;
  /// Set when the shard holds tasks back for want of a permit (limits.hpp): the earliest
  /// time one of their types may get a permit again (a rate window slides past its oldest
  /// start, the earliest concurrency permit's lease deadline). A released concurrency
  /// permit wakes the shard sooner (watch_wakes).
  std::optional<time_point> permit_at;
};

/// A finished run. `next_due` set: a recurring task is rescheduled at that time instead of
/// being removed.
struct completion {
  std::string id;
  std::string token;
  std::optional<time_point> next_due;
};

/// A failed run. `retry_in` set: back to due after that delay; unset: dead-letter now
/// (attempts exhausted, unknown type, undecodable payload).
struct failure {
  std::string id;
  std::string token;
  std::string error;
  std::optional<std::chrono::microseconds> retry_in;
};

struct lease_ref {
  std::string id;
  std::string token;
};

struct store_stats {
  std::uint64_t scheduled = 0;  ///< waiting in the due set (due or not)
  std::uint64_t due_now = 0;    ///< of those, due at the store's now
  std::uint64_t in_flight = 0;  ///< claimed, lease not yet released
  std::uint64_t dead = 0;       ///< in the dead-letter set
  /// Of `scheduled` (and `due_now`): due tasks held back by a limit (limits.hpp).
  std::uint64_t held = 0;
};

/// What is paused in a namespace (store::paused).
struct pause_state {
  /// The whole namespace: no task is claimed.
  bool all = false;
  /// Paused task types, sorted.
  std::vector<std::string> types;
};

/// Thrown by store::schedule_many() when some tasks could not be scheduled; every other task
/// of the call was scheduled.
class schedule_many_error : public std::runtime_error {
 public:
  schedule_many_error(std::vector<std::string> failed_ids, const std::string& first_reason);
  /// The ids that were not scheduled, in the order of the input.
  const std::vector<std::string>& failed_ids() const noexcept { return failed_ids_; }

 private:
  std::vector<std::string> failed_ids_;
};

/// What a later schedule of a task id does while that id's deduplication window is open.
enum class dedup_mode {
  replace,  ///< a waiting task takes the new payload, type, due time and options (debounce)
  drop,     ///< the new schedule is dropped; the existing task is kept unchanged
};

/// Deduplication of schedules: of one task id (store::schedule_deduplicated), or of one
/// deduplication key apart from the id (store::schedule_deduplicated_by_key, which takes the
/// key as its own parameter: this struct holds no string, so a named one passed to a
/// coroutine is safe under GCC 12).
struct dedup_options {
  /// How long after a schedule that opened it the window stays open (> 0; whole ms).
  std::chrono::milliseconds window{};
  dedup_mode mode = dedup_mode::replace;
};

/// What store::schedule_deduplicated did.
enum class dedup_outcome {
  scheduled,  ///< added or replaced as schedule() does, and a new window opened
  replaced,   ///< within the window: the waiting task took the new payload and due time
  dropped,    ///< within the window: nothing changed
};

std::string_view to_string(dedup_outcome outcome) noexcept;

/// What store::schedule_deduplicated_by_key did.
struct dedup_result {
  dedup_outcome outcome = dedup_outcome::scheduled;
  /// With outcome replaced: the id of the pending task this schedule replaced (removed, or
  /// its schedule, still on the way from another caller, made a no-op: it does not run);
  /// the task's own id when that id was the pending one (replaced in place). Empty otherwise.
  std::string replaced_id;
};

class store {
 public:
  virtual ~store() = default;

  /// Prepares the store before first use and checks its configuration against what it
  /// holds (redis_store: the namespace's shard count). The dispatcher calls it before it
  /// reads shards(). Default: nothing to do.
  virtual asio::awaitable<void> open() { co_return; }

  /// Number of shards of the namespace.
  virtual unsigned shards() const noexcept = 0;
  /// The shard of a task id.
  virtual unsigned shard_of(std::string_view id) const noexcept = 0;

  /// Adds or replaces the task with this id. A run of the replaced version still in flight
  /// is fenced off (its ack is refused). Wakes dispatchers when it becomes the shard's head.
  /// A max_attempts of 0 is stored as default_max_attempts (the scheduler puts the type's
  /// value there first); an invalid own retry backoff is refused (std::invalid_argument).
  virtual asio::awaitable<void> schedule(task t) = 0;
  /// Adds the task only when no task with this id exists (scheduled, in flight or dead):
  /// true when it was added, false when the existing one was kept unchanged (its run in
  /// flight is not fenced off). Checked and written atomically, so of concurrent calls
  /// from any processes exactly one adds it. Validation as schedule().
  virtual asio::awaitable<bool> schedule_if_absent(task t) = 0;
  /// Schedules `t` with a deduplication window on its id (debounce). No window open for the
  /// id: as schedule() (an upsert), and a window of `options.window` opens (outcome
  /// scheduled). Within the window, mode drop: nothing changes (dropped). Mode replace: a
  /// waiting task takes the new record (payload, type, due time, attempts, recurrence) and
  /// due time, its attempts reset, the window unchanged (replaced); when the task is no
  /// longer waiting (it ran, is in flight, dead or cancelled) it is scheduled as schedule()
  /// does (a run in flight is fenced off) and a new window opens (scheduled). Windows are
  /// timed by the store's clock (the Redis server's). Checked and written atomically.
  /// Throws std::invalid_argument for a window <= 0 and as schedule().
  virtual asio::awaitable<dedup_outcome> schedule_deduplicated(task t, dedup_options options) = 0;
  /// Schedules `t` with a deduplication window on `key`, a key apart from the task id:
  /// schedules of different ids with one key dedupe (debounce), as BullMQ's deduplication
  /// id. The window holds the id of the key's pending task. No window open for `key`: as
  /// schedule() (an upsert), and a window of `options.window` opens holding t.id (outcome
  /// scheduled). Within the window, mode drop: nothing changes (dropped). Mode replace: `t`
  /// is scheduled as schedule() does under its own id, which the window now holds (its
  /// closing time unchanged), and the task the window held is replaced: still waiting, it is
  /// removed and does not run (a `cancelled` event, reason "deduplicated"); its schedule
  /// still on the way from another caller, that schedule becomes a no-op (outcome replaced,
  /// with its id); the same id as t's, it is replaced in place (replaced, t.id). When the
  /// held task no longer waits (it ran, is in flight, dead or cancelled) it is not touched
  /// (unless it has t's id: the upsert fences a run in flight off, as schedule() does): `t`
  /// is scheduled and the window restarts, open for `options.window` from now (scheduled).
  /// Of concurrent calls with one key from any processes, each replaces the one before it in
  /// the key's order, so one task is left. Windows are timed by the store's clock.
  /// redis_store: the window and the task are in different slots, so this is several atomic
  /// steps; a process that dies between them may leave two tasks (see docs/scheduler.md,
  /// Deduplication by key). Throws std::invalid_argument for an empty key,
  /// a window <= 0 and as schedule(). Default: throws std::logic_error (a store without it).
  virtual asio::awaitable<dedup_result> schedule_deduplicated_by_key(task t, std::string key,
                                                                     dedup_options options);
  /// Schedules every task of `tasks` as schedule() does, with up to `window` (>= 1) calls in
  /// flight at once, for imports and bursts: over Redis the client pipelines the calls in
  /// flight, so a burst costs a round trip per window rather than one per task, and the
  /// shards' scripts run back to back. Returns when every call has finished. A task that
  /// fails does not stop the others: the call then throws schedule_many_error naming the ids
  /// that were not scheduled (the first reason in its message); schedule() is an upsert, so
  /// calling again with the same tasks is safe. Cancellation stops it (tasks not yet sent
  /// are not scheduled) and throws operation_aborted.
  asio::awaitable<void> schedule_many(std::vector<task> tasks, std::size_t window = 512);
  virtual asio::awaitable<std::optional<task>> get(std::string id) = 0;
  /// Scheduled tasks in due order (ties by id), across shards: entries offset ..
  /// offset+limit-1 of that order; limit 0 gives an empty page.
  virtual asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit) = 0;
  /// Removes a task wherever it is (due, in flight, dead). False when unknown.
  virtual asio::awaitable<bool> cancel(std::string id) = 0;
  /// Moves a waiting task to a new due time. False when unknown or in flight.
  virtual asio::awaitable<bool> reschedule(std::string id, time_point due) = 0;
  virtual asio::awaitable<store_stats> stats() = 0;

  /// Re-leases expired leases of `shard`, then claims up to `limit` due tasks for `lease`.
  virtual asio::awaitable<claim_result> claim(unsigned shard, std::size_t limit,
                                              std::chrono::milliseconds lease) = 0;
  /// Completes runs; returns how many tokens still held their lease (the others are stale).
  virtual asio::awaitable<std::size_t> ack(unsigned shard, std::vector<completion> done) = 0;
  /// Fails one run; false when the token is stale.
  virtual asio::awaitable<bool> nack(unsigned shard, failure failed) = 0;
  /// Renews leases; element i tells whether leases[i] was still held (and is renewed).
  virtual asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<lease_ref> leases,
                                                    std::chrono::milliseconds lease) = 0;

  /// Pauses the namespace (`type` empty) or one task type, for every process sharing it:
  /// claims take no task of a paused type (such a task that comes due is set aside, still
  /// scheduled and due: get() and browse() show it, stats() counts it in scheduled and
  /// due_now) and, with the namespace paused, none at all; runs in flight go on, expired
  /// leases are still handled. Idempotent. The namespace pause and each type pause are
  /// independent: a task is claimed only when neither is paused. Throws
  /// std::invalid_argument for the type "*" (reserved) or a type with a newline.
  virtual asio::awaitable<void> pause(std::string type) = 0;
  /// Lifts pause(type) and wakes every process's dispatchers for the shards, so tasks held
  /// back run at once (no polling). Idempotent.
  virtual asio::awaitable<void> resume(std::string type) = 0;
  /// What is paused now.
  virtual asio::awaitable<pause_state> paused() = 0;

  /// Dead letters, most recent first (ties by id), as browse() pages.
  virtual asio::awaitable<std::vector<task>> dead_letters(std::size_t offset,
                                                          std::size_t limit) = 0;
  /// Puts a dead task back to due now with its attempts reset. False when not dead.
  virtual asio::awaitable<bool> replay(std::string id) = 0;
  /// Deletes one dead task, or all of them when `id` is empty; returns how many.
  virtual asio::awaitable<std::size_t> purge(std::string id) = 0;

  /// Sets the global rate and concurrency limits per task type (limits.hpp) that claim()
  /// enforces from now on; every process of a namespace must set the same. Types without a
  /// limit are skipped (an empty map: no limits, the default). The dispatcher calls it from
  /// run() with its options' type policies. Default: throws std::invalid_argument when a
  /// type is limited (a store that cannot enforce limits).
  virtual void set_limits(type_limits limits);
  /// The limits set and what each holds now, by type. Default: none.
  virtual asio::awaitable<std::vector<limit_state>> limit_states();

  /// A reader of the namespace's task events (events.hpp), from `query.from` on, filtered by
  /// the query. Reading works whether or not this store writes events
  /// (events_options::enabled). Throws std::invalid_argument for a position of another
  /// shard count or form. Default: throws std::logic_error (a store without events).
  virtual asio::awaitable<std::unique_ptr<event_reader>> events(event_query query);
  /// The task events this store wrote since it was made, by kind (event_counts.hpp; the
  /// events written by other processes of the namespace are theirs). Thread-safe: may be
  /// called on another thread than the store's. Default: all zero (a store without events).
  virtual event_counts events_written() const noexcept;

  /// Calls `on_wake(shard)` whenever a task lands ahead of a shard's head or a permit a
  /// shard waits for is released (from any process), until cancelled; and once for every
  /// shard as soon as it listens (the Redis store: its subscription confirmed), since a
  /// wake-up before that reached no one. Runs on the caller's executor.
  virtual asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) = 0;
};

}  // namespace corvo::schedule
