#pragma once
// The memory store's state and the helpers its source files share: memory_store.cpp (the
// task operations: schedule, deduplication, get, cancel, reschedule, claim, ack, nack,
// extend, the wake-up watch), memory_store_admin.cpp (inspection and administration: browse,
// stats, pause and resume, dead letters, replay, purge) and memory_store_limits.cpp (the
// global limits' permits).
//
// Mirrors the Lua scripts of redis_store (src/schedule/redis_scripts.hpp) operation by
// operation: the due, inflight and dead sorted sets become ordered sets of (score, id), the
// lease hash becomes the entry's token, the tasks hash the entry itself.

#include <algorithm>
#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event_tally.hpp"
#include "memory_events.hpp"
#include "permit_book.hpp"

namespace corvo::schedule {
namespace detail::memory_store_support {

/// parked: due, but its type is paused (set aside by a claim until resume). held: due, but
/// its type's limit had no permit (set aside by a claim until one frees).
enum class place { waiting, parked, held, in_flight, dead };

struct entry {
  task work;  ///< work.due: the due time while waiting, the last one otherwise
  place where = place::waiting;
  /// Still to run: due (waiting), set aside by a pause (parked) or held back by a limit.
  bool waits() const noexcept {
    return where == place::waiting || where == place::parked || where == place::held;
  }
  /// The current lease's fencing token; empty when no lease is held.
  std::string token;
  time_point lease_deadline{};
  time_point dead_since{};
  /// While held: its key in the type's held set (due - level * aging, as the claim orders).
  time_point held_key{};
};

/// A sorted set: (score, id), ties ordered by id as in Redis.
using scored_set = std::set<std::pair<time_point, std::string>>;

struct shard_state {
  std::unordered_map<std::string, entry> tasks;
  /// Waiting tasks by due time, one set per priority: [0] high, [1] normal, [2] low.
  std::array<scored_set, 3> due_levels;
  scored_set inflight;  ///< by lease deadline
  scored_set dead;      ///< by the time it was dead-lettered
  scored_set parked;    ///< by due time: tasks of a paused type a claim set aside
  scored_set held;      ///< by due time: tasks a claim held back for want of a permit
  /// The same by type, keyed by the claim's order (entry::held_key).
  std::map<std::string, scored_set, std::less<>> held_by_type;
  /// Open deduplication windows: id -> when it closes, and the same ordered by closing time
  /// (closed ones are dropped at the next schedule_deduplicated on the shard).
  std::unordered_map<std::string, time_point> windows;
  scored_set window_ends;
};

/// The due set of priority `p`.
inline scored_set& due_of(shard_state& s, priority p) {
  return s.due_levels[static_cast<std::size_t>(1 - static_cast<int>(p))];
}

/// The earliest waiting entry of a shard, or null.
inline const std::pair<time_point, std::string>* head_of(const shard_state& s) {
  const std::pair<time_point, std::string>* head = nullptr;
  for (const auto& level : s.due_levels) {
    if (!level.empty() && (head == nullptr || *level.begin() < *head)) {
      head = &*level.begin();
    }
  }
  return head;
}

struct watcher {
  asio::any_io_executor executor;
  std::function<void(unsigned)> on_wake;
  bool active = true;
};

using watcher_list = std::list<std::shared_ptr<watcher>>;

inline task_state state_of(place where) noexcept {
  switch (where) {
    case place::waiting:
    case place::parked:
    case place::held:
      return task_state::scheduled;
    case place::in_flight:
      return task_state::in_flight;
    case place::dead:
      return task_state::dead;
  }
  return task_state::unknown;
}

inline task snapshot(const entry& e) {
  task t = e.work;
  t.state = state_of(e.where);
  return t;
}

}  // namespace detail::memory_store_support

using namespace detail::memory_store_support;

struct memory_store::impl {
  impl(asio::any_io_executor ex, unsigned shard_count, dead_letter_limits caps)
      : executor(std::move(ex)),
        limits(caps),
        shards(shard_count),
        events(executor, std::max(shard_count, 1u)) {
    if (shard_count == 0) {
      throw std::invalid_argument("memory_store: shards must be at least 1");
    }
  }

  asio::any_io_executor executor;
  dead_letter_limits limits;
  std::vector<shard_state> shards;
  std::function<time_point()> clock = [] { return schedule::now(); };
  std::chrono::microseconds aging = std::chrono::seconds(10);
  std::uint64_t last_token = 0;
  std::shared_ptr<watcher_list> watchers = std::make_shared<watcher_list>();
  /// pause(): the whole namespace, and the paused types.
  bool paused_all = false;
  std::set<std::string> paused_types;
  /// set_limits(): the permits of each limited type.
  std::map<std::string, detail::permit_book, std::less<>> permits;
  /// set_events(): the task events.
  detail::memory_event_log events;
  /// The events written, by kind (event_counts.hpp).
  detail::event_tally tally;
  /// Open deduplication windows by key (schedule_deduplicated_by_key): the task id the
  /// window holds and when it closes; the same keys ordered by closing time (closed windows
  /// are forgotten at the next call).
  struct key_window {
    std::string id;
    time_point closes{};
  };
  std::unordered_map<std::string, key_window> key_windows;
  scored_set key_window_ends;

  /// Records an event of `w` (when events are on) at the store's clock.
  void event(unsigned shard, event_kind kind, const task& w, std::string reason = {},
             std::optional<time_point> due = std::nullopt) {
    if (!events.enabled()) {
      return;
    }
    task_event e;
    e.kind = kind;
    e.task_id = w.id;
    e.type = w.type;
    if (kind != event_kind::scheduled && kind != event_kind::cancelled) {
      e.attempt = w.attempts;
    }
    e.due = due;
    e.at = clock();
    e.reason = std::move(reason);
    e.shard = shard;
    events.record(std::move(e));
    tally.add(kind);
  }

  shard_state& shard_at(unsigned shard) {
    if (shard >= shards.size()) {
      throw std::out_of_range("memory_store: shard " + std::to_string(shard) + " of " +
                              std::to_string(shards.size()));
    }
    return shards[shard];
  }

  unsigned shard_for(std::string_view id) const {
    return schedule::shard_of(id, static_cast<unsigned>(shards.size()));
  }

  /// Takes `e` out of whichever set holds it and drops its lease.
  static void detach(shard_state& s, const std::string& id, entry& e) {
    switch (e.where) {
      case place::waiting:
        due_of(s, e.work.priority).erase({e.work.due, id});
        break;
      case place::parked:
        s.parked.erase({e.work.due, id});
        break;
      case place::held: {
        s.held.erase({e.work.due, id});
        const auto by_type = s.held_by_type.find(e.work.type);
        by_type->second.erase({e.held_key, id});
        if (by_type->second.empty()) {
          s.held_by_type.erase(by_type);
        }
        break;
      }
      case place::in_flight:
        s.inflight.erase({e.lease_deadline, id});
        break;
      case place::dead:
        s.dead.erase({e.dead_since, id});
        break;
    }
    e.token.clear();
  }

  /// Puts `e` (detached) into the due set at `due`; wakes watchers when it is the head.
  void make_due(unsigned shard, const std::string& id, entry& e, time_point due) {
    auto& s = shards[shard];
    e.where = place::waiting;
    e.work.due = due;
    due_of(s, e.work.priority).emplace(due, id);
    // As the scripts' wake_if_head: the task is the head, or shares the head's due time.
    const auto& head = *head_of(s);
    if (head.second == id || due <= head.first) {
      wake(shard);
    }
  }

  void wake(unsigned shard) {
    for (const auto& w : *watchers) {
      asio::post(w->executor, [w, shard] {
        if (w->active) {
          w->on_wake(shard);
        }
      });
    }
  }

  void make_dead(shard_state& s, const std::string& id, entry& e, time_point at) {
    e.where = place::dead;
    e.dead_since = at;
    s.dead.emplace(at, id);
    // Age first, then count, oldest first; their records go too.
    while (!s.dead.empty() && s.dead.begin()->first <= at - limits.max_age) {
      drop_dead(s, s.dead.begin());
    }
    while (s.dead.size() > limits.max_count) {
      drop_dead(s, s.dead.begin());
    }
  }

  static void drop_dead(shard_state& s, scored_set::iterator it) {
    s.tasks.erase(it->second);
    s.dead.erase(it);
  }

  entry* find(std::string_view id, unsigned& shard) {
    shard = shard_for(id);
    auto& s = shards[shard];
    const auto it = s.tasks.find(std::string(id));
    return it == s.tasks.end() ? nullptr : &it->second;
  }

  /// The entry holding the lease `token` for `id` in shard `s`, or null when stale.
  static entry* leased(shard_state& s, const std::string& id, const std::string& token) {
    const auto it = s.tasks.find(id);
    if (it == s.tasks.end() || it->second.where != place::in_flight || token.empty() ||
        it->second.token != token) {
      return nullptr;
    }
    return &it->second;
  }

  // The operations (the coroutines of memory_store only wrap them, and GCC 12 handles
  // temporaries in coroutine bodies badly, so they stay out of them).

  // memory_store.cpp: the task operations.

  static void validate(const task& t);
  /// What schedule() resets: a new task starts with no attempts and no error.
  static void reset(task& t);
  /// False (and nothing changed) when `if_absent` and a task with this id exists.
  bool schedule(task t, bool if_absent);
  /// As the schedule_dedup script: see store::schedule_deduplicated.
  dedup_outcome schedule_deduplicated(task t, dedup_options options);
  /// As redis_store's steps, at once: see store::schedule_deduplicated_by_key.
  dedup_result schedule_deduplicated_by_key(task t, const std::string& key, dedup_options options);
  std::optional<task> get(const std::string& id);
  bool cancel(const std::string& id);
  bool reschedule(const std::string& id, time_point due);
  claim_result claim(unsigned shard, std::size_t limit, std::chrono::milliseconds lease);
  std::size_t ack(unsigned shard, const std::vector<completion>& done);
  bool nack(unsigned shard, failure& failed);
  std::vector<bool> extend(unsigned shard, const std::vector<lease_ref>& leases,
                           std::chrono::milliseconds lease);

  // memory_store_admin.cpp: inspection and administration.

  // One page of a k-way merge over the shards' sets: `first(shard)`/`last(shard)` give each
  // shard's range in page order, `before(a, b)` orders entries. Walks offset+limit entries
  // and copies none but the page.
  template <class First, class Last, class Before>
  std::vector<task> merged_page(std::size_t offset, std::size_t limit, First first, Last last,
                                Before before) const;
  std::vector<task> browse(std::size_t offset, std::size_t limit) const;
  static void check_pausable(const std::string& type);
  void pause(const std::string& type);
  void resume(const std::string& type);
  pause_state paused() const;
  store_stats stats() const;
  std::vector<task> dead_letters(std::size_t offset, std::size_t limit) const;
  bool replay(const std::string& id);
  std::size_t purge(const std::string& id);

  // memory_store_limits.cpp: the limits (as the claim script's).

  /// Holds back `e` (detached, due) until its type's limit has a permit.
  void hold(unsigned shard, const std::string& id, entry& e, detail::permit_book& book,
            time_point now, claim_result& out);
  /// Puts back into the due sets as many held tasks of each limited type as it has permits
  /// free (the claim then takes them in its order); reports when the rest may get one.
  void release_held(unsigned shard, time_point now, claim_result& out);
  /// Releases the concurrency permit of `token` (if any) and wakes one shard that holds
  /// tasks of its type back.
  void release_permit(const std::string& token);
  /// A type whose limit is unchanged keeps its permits (several dispatchers of one store
  /// each set the same limits).
  void set_limits(const type_limits& limits);
  std::vector<limit_state> limit_states();
};

}  // namespace corvo::schedule
