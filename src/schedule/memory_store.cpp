#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <cstdint>
#include <list>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "event_tally.hpp"
#include "memory_events.hpp"
#include "permit_book.hpp"

// Mirrors the Lua scripts of redis_store (src/schedule/redis_scripts.hpp) operation by
// operation: the due, inflight and dead sorted sets become ordered sets of (score, id), the
// lease hash becomes the entry's token, the tasks hash the entry itself.

namespace corvo::schedule {
namespace {

/// parked: due, but its type is paused (set aside by a claim until resume). held: due, but
/// its type's limit had no permit (set aside by a claim until one frees).
enum class place { waiting, parked, held, in_flight, dead };

struct entry {
  task work;  ///< work.due: the due time while waiting, the last one otherwise
  place where = place::waiting;
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
scored_set& due_of(shard_state& s, priority p) {
  return s.due_levels[static_cast<std::size_t>(1 - static_cast<int>(p))];
}

/// The earliest waiting entry of a shard, or null.
const std::pair<time_point, std::string>* head_of(const shard_state& s) {
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

/// Keeps a watcher registered for the lifetime of its watch_wakes() call.
class registration {
 public:
  registration(const std::shared_ptr<watcher_list>& list, std::shared_ptr<watcher> w)
      : list_(list), watcher_(std::move(w)) {
    list->push_back(watcher_);
  }
  registration(const registration&) = delete;
  registration& operator=(const registration&) = delete;
  ~registration() {
    watcher_->active = false;              // drops wake-ups already posted
    if (const auto list = list_.lock()) {  // the store may be gone first
      list->remove(watcher_);
    }
  }

 private:
  std::weak_ptr<watcher_list> list_;
  std::shared_ptr<watcher> watcher_;
};

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

task_state state_of(place where) noexcept {
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

/// The reason a lease expiry records, counting consecutive expiries: "lease expired N times
/// (worker died or hung)" (as the claim script).
std::string lease_expired_reason(const std::string& last_error) {
  constexpr std::string_view prefix = "lease expired ";
  constexpr std::string_view suffix = " times (worker died or hung)";
  unsigned before = 0;
  if (last_error.starts_with(prefix) && last_error.ends_with(suffix)) {
    const auto digits =
        std::string_view(last_error)
            .substr(prefix.size(), last_error.size() - prefix.size() - suffix.size());
    if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos &&
        digits.size() < 9) {
      before = static_cast<unsigned>(std::stoul(std::string(digits)));
    }
  }
  return std::string(prefix) + std::to_string(before + 1) + std::string(suffix);
}

task snapshot(const entry& e) {
  task t = e.work;
  t.state = state_of(e.where);
  return t;
}

}  // namespace

struct memory_store::impl {
  impl(const store& owner, asio::any_io_executor ex, unsigned shard_count, dead_letter_limits caps)
      : executor(std::move(ex)),
        limits(caps),
        shards(shard_count),
        events(executor, std::max(shard_count, 1u)),
        tally(owner) {
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

  // The operations, as plain functions: the coroutines below only wrap them (and GCC 12
  // handles temporaries in coroutine bodies badly, so they stay out of them).

  static void validate(const task& t) {
    if (t.id.empty()) {
      throw std::invalid_argument("schedule: the task id is empty");
    }
    if (t.retry) {
      schedule::validate(*t.retry, "task '" + t.id + "'");
    }
    if (t.type.empty()) {
      throw std::invalid_argument("task '" + t.id + "': the type is empty");
    }
    if (t.type.find('\n') != std::string::npos) {
      throw std::invalid_argument("task '" + t.id + "': the type contains a newline");
    }
    trace::check_traceparent(t.traceparent, "task '" + t.id + "'");
  }

  /// What schedule() resets: a new task starts with no attempts and no error.
  static void reset(task& t) {
    if (t.max_attempts == 0) {
      t.max_attempts = default_max_attempts;
    }
    t.attempts = 0;
    t.last_error.clear();
    t.occurrence = t.due;
    t.state = task_state::scheduled;
  }

  /// False (and nothing changed) when `if_absent` and a task with this id exists.
  bool schedule(task t, bool if_absent) {
    validate(t);
    reset(t);
    const auto shard = shard_for(t.id);
    auto& s = shards[shard];
    if (if_absent && s.tasks.contains(t.id)) {
      return false;
    }
    auto [it, inserted] = s.tasks.try_emplace(t.id);
    if (!inserted) {
      detach(s, it->first, it->second);  // fences off a run in flight
    }
    const auto due = t.due;
    it->second.work = std::move(t);
    make_due(shard, it->first, it->second, due);
    event(shard, event_kind::scheduled, it->second.work, {}, due);
    return true;
  }

  /// As the schedule_dedup script: see store::schedule_deduplicated.
  dedup_outcome schedule_deduplicated(task t, dedup_options options) {
    if (options.window <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("task '" + t.id + "': the deduplication window must be positive");
    }
    validate(t);
    const auto now = clock();
    const auto shard = shard_for(t.id);
    auto& s = shards[shard];
    while (!s.window_ends.empty() && s.window_ends.begin()->first <= now) {
      s.windows.erase(s.window_ends.begin()->second);
      s.window_ends.erase(s.window_ends.begin());
    }
    if (s.windows.contains(t.id)) {
      if (options.mode == dedup_mode::drop) {
        return dedup_outcome::dropped;
      }
      const auto it = s.tasks.find(t.id);
      if (it != s.tasks.end() &&
          (it->second.where == place::waiting || it->second.where == place::parked ||
           it->second.where == place::held)) {
        reset(t);
        detach(s, it->first, it->second);
        const auto due = t.due;
        it->second.work = std::move(t);
        make_due(shard, it->first, it->second, due);
        event(shard, event_kind::scheduled, it->second.work, "replaced", due);
        return dedup_outcome::replaced;
      }
      s.window_ends.erase({s.windows.at(t.id), t.id});
    }
    const auto closes = now + std::chrono::duration_cast<std::chrono::microseconds>(options.window);
    s.windows[t.id] = closes;
    s.window_ends.emplace(closes, t.id);
    schedule(std::move(t), false);
    return dedup_outcome::scheduled;
  }

  std::optional<task> get(const std::string& id) {
    unsigned shard = 0;
    const entry* e = find(id, shard);
    if (e == nullptr) {
      return std::nullopt;
    }
    return snapshot(*e);
  }

  // One page of a k-way merge over the shards' sets: `first(shard)`/`last(shard)` give each
  // shard's range in page order, `before(a, b)` orders entries. Walks offset+limit entries
  // and copies none but the page.
  template <class First, class Last, class Before>
  std::vector<task> merged_page(std::size_t offset, std::size_t limit, First first, Last last,
                                Before before) const {
    std::vector<decltype(first(shards[0]))> at;
    for (const auto& s : shards) {
      at.push_back(first(s));
    }
    std::vector<task> page;
    for (std::size_t skipped = 0; page.size() < limit;) {
      std::size_t best = shards.size();
      for (std::size_t i = 0; i < shards.size(); ++i) {
        if (at[i] != last(shards[i]) && (best == shards.size() || before(*at[i], *at[best]))) {
          best = i;
        }
      }
      if (best == shards.size()) {
        break;
      }
      if (skipped < offset) {
        ++skipped;
      } else {
        page.push_back(snapshot(shards[best].tasks.at(at[best]->second)));
      }
      ++at[best];
    }
    return page;
  }

  std::vector<task> browse(std::size_t offset, std::size_t limit) const {
    if (std::all_of(shards.begin(), shards.end(), [](const auto& s) {
          return s.parked.empty() && s.held.empty() && s.due_levels[0].empty() &&
                 s.due_levels[2].empty();
        })) {
      return merged_page(
          offset, limit, [](const auto& s) { return s.due_levels[1].begin(); },
          [](const auto& s) { return s.due_levels[1].end(); },
          [](const auto& a, const auto& b) { return a < b; });
    }
    // Tasks of every priority and those set aside by a pause are listed together, in due order.
    std::vector<std::pair<std::pair<time_point, std::string>, const entry*>> all;
    for (const auto& s : shards) {
      for (const auto* set :
           {&s.due_levels[0], &s.due_levels[1], &s.due_levels[2], &s.parked, &s.held}) {
        for (const auto& member : *set) {
          all.emplace_back(member, &s.tasks.at(member.second));
        }
      }
    }
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<task> page;
    for (std::size_t i = offset; i < all.size() && page.size() < limit; ++i) {
      page.push_back(snapshot(*all[i].second));
    }
    return page;
  }

  static void check_pausable(const std::string& type) {
    if (type == "*" || type.find('\n') != std::string::npos) {
      throw std::invalid_argument("pause: '" + type + "' is not a task type");
    }
  }

  void pause(const std::string& type) {
    check_pausable(type);
    if (type.empty()) {
      paused_all = true;
    } else {
      paused_types.insert(type);
    }
  }

  void resume(const std::string& type) {
    check_pausable(type);
    if (type.empty()) {
      paused_all = false;
    } else if (paused_types.erase(type) > 0) {
      for (unsigned shard = 0; shard < shards.size(); ++shard) {
        auto& s = shards[shard];
        for (auto it = s.parked.begin(); it != s.parked.end();) {
          auto& e = s.tasks.at(it->second);
          const auto next = std::next(it);
          if (e.work.type == type) {
            const auto [due, id] = *it;
            s.parked.erase(it);
            e.where = place::waiting;
            due_of(s, e.work.priority).emplace(due, id);
          }
          it = next;
        }
      }
    }
    for (unsigned shard = 0; shard < shards.size(); ++shard) {
      wake(shard);
    }
  }

  pause_state paused() const {
    pause_state out;
    out.all = paused_all;
    out.types.assign(paused_types.begin(), paused_types.end());
    return out;
  }

  bool cancel(const std::string& id) {
    unsigned shard = 0;
    entry* e = find(id, shard);
    if (e == nullptr) {
      return false;
    }
    auto& s = shards[shard];
    detach(s, id, *e);
    event(shard, event_kind::cancelled, e->work);
    s.tasks.erase(id);
    return true;
  }

  bool reschedule(const std::string& id, time_point due) {
    unsigned shard = 0;
    entry* e = find(id, shard);
    if (e == nullptr ||
        (e->where != place::waiting && e->where != place::parked && e->where != place::held)) {
      return false;
    }
    detach(shards[shard], id, *e);
    e->work.occurrence = due;  // the moved run is the occurrence at its new time
    make_due(shard, id, *e, due);
    event(shard, event_kind::scheduled, e->work, "rescheduled", due);
    return true;
  }

  store_stats stats() const {
    const auto now = clock();
    store_stats total;
    for (const auto& s : shards) {
      total.scheduled += s.parked.size();
      total.due_now += s.parked.size();  // set aside because they were due
      total.scheduled += s.held.size();
      total.due_now += s.held.size();  // held back because they were due
      total.held += s.held.size();
      for (const auto& level : s.due_levels) {
        total.scheduled += level.size();
        for (auto it = level.begin(); it != level.end() && it->first <= now; ++it) {
          ++total.due_now;
        }
      }
      total.in_flight += s.inflight.size();
      total.dead += s.dead.size();
    }
    return total;
  }

  claim_result claim(unsigned shard, std::size_t limit, std::chrono::milliseconds lease) {
    auto& s = shard_at(shard);
    claim_result out;
    const auto now = clock();
    out.store_now = now;
    // Expired leases first: their tasks become due now (the dead worker's try still counts),
    // or dead when that try was the last one.
    while (!s.inflight.empty() && s.inflight.begin()->first <= now) {
      const std::string id = s.inflight.begin()->second;
      auto& e = s.tasks.at(id);
      detach(s, id, e);
      e.work.last_error = lease_expired_reason(e.work.last_error);
      if (e.work.attempts >= e.work.max_attempts) {
        event(shard, event_kind::dead, e.work, e.work.last_error);
        make_dead(s, id, e, now);  // may drop the record (the caps)
      } else {
        make_due(shard, id, e, now);
        event(shard, event_kind::failed, e.work, e.work.last_error);
      }
    }
    const auto deadline = now + std::chrono::duration_cast<std::chrono::microseconds>(lease);
    if (!permits.empty()) {
      release_held(shard, now, out);
    }
    // The priority rule (task.hpp): the due entry with the least due - level * aging, ties
    // to the higher level.
    const auto next_due_entry = [&]() -> const std::string* {
      const std::string* best = nullptr;
      time_point best_key{};
      for (std::size_t l = 0; l < s.due_levels.size(); ++l) {
        const auto& level = s.due_levels[l];
        if (level.empty() || level.begin()->first > now) {
          continue;
        }
        const auto key = level.begin()->first - (1 - static_cast<int>(l)) * aging;
        if (best == nullptr || key < best_key) {
          best = &level.begin()->second;
          best_key = key;
        }
      }
      return best;
    };
    while (!paused_all && out.tasks.size() < limit) {
      const auto* next = next_due_entry();
      if (next == nullptr) {
        break;
      }
      const std::string id = *next;
      auto& e = s.tasks.at(id);
      detach(s, id, e);
      if (!paused_types.empty() && paused_types.contains(e.work.type)) {
        e.where = place::parked;  // stays due; resume() puts it back
        s.parked.emplace(e.work.due, id);
        continue;
      }
      detail::permit_book* book = nullptr;
      if (!permits.empty()) {
        if (const auto it = permits.find(e.work.type); it != permits.end()) {
          book = &it->second;
          if (book->free(now) == 0) {
            hold(shard, id, e, *book, now, out);
            continue;
          }
        }
      }
      e.where = place::in_flight;
      e.token = std::to_string(++last_token);
      e.lease_deadline = deadline;
      if (book != nullptr) {
        book->take(e.token, deadline, now);
      }
      ++e.work.attempts;
      s.inflight.emplace(deadline, id);
      claimed_task claimed;
      claimed.work = snapshot(e);
      claimed.token = e.token;
      claimed.shard = shard;
      claimed.claimed_at = now;
      event(shard, event_kind::started, e.work);
      out.tasks.push_back(std::move(claimed));
    }
    if (const auto* head = head_of(s); head != nullptr && !paused_all) {  // paused: no wake
      out.next_due = head->first;
    }
    if (!s.inflight.empty()) {
      out.next_lease_expiry = s.inflight.begin()->first;
    }
    return out;
  }

  std::size_t ack(unsigned shard, const std::vector<completion>& done) {
    auto& s = shard_at(shard);
    std::size_t acked = 0;
    for (const auto& c : done) {
      release_permit(c.token);  // the run has ended, whether its lease still holds or not
      entry* e = leased(s, c.id, c.token);
      if (e == nullptr) {
        continue;
      }
      ++acked;
      detach(s, c.id, *e);
      event(shard, event_kind::succeeded, e->work);
      if (c.next_due) {
        e->work.attempts = 0;
        e->work.last_error.clear();
        e->work.occurrence = *c.next_due;  // the next occurrence starts
        make_due(shard, c.id, *e, *c.next_due);
        event(shard, event_kind::scheduled, e->work, "next occurrence", *c.next_due);
      } else {
        s.tasks.erase(c.id);
      }
    }
    return acked;
  }

  bool nack(unsigned shard, failure& failed) {
    auto& s = shard_at(shard);
    release_permit(failed.token);
    entry* e = leased(s, failed.id, failed.token);
    if (e == nullptr) {
      return false;
    }
    const auto now = clock();
    detach(s, failed.id, *e);
    e->work.last_error = one_line(std::move(failed.error));
    if (failed.retry_in) {
      make_due(shard, failed.id, *e, now + *failed.retry_in);
      event(shard, event_kind::failed, e->work, e->work.last_error);
    } else {
      event(shard, event_kind::dead, e->work, e->work.last_error);
      make_dead(s, failed.id, *e, now);  // may drop the record (the caps)
    }
    return true;
  }

  std::vector<bool> extend(unsigned shard, const std::vector<lease_ref>& leases,
                           std::chrono::milliseconds lease) {
    auto& s = shard_at(shard);
    const auto deadline = clock() + std::chrono::duration_cast<std::chrono::microseconds>(lease);
    std::vector<bool> held;
    held.reserve(leases.size());
    for (const auto& l : leases) {
      entry* e = leased(s, l.id, l.token);
      held.push_back(e != nullptr);
      if (e == nullptr) {
        continue;
      }
      s.inflight.erase(std::make_pair(e->lease_deadline, l.id));
      e->lease_deadline = deadline;
      s.inflight.emplace(deadline, l.id);
      for (auto& [type, book] : permits) {
        book.extend(l.token, deadline);  // a permit lasts as long as its lease
      }
    }
    return held;
  }

  // ---- limits (as the claim script's) --------------------------------------------------

  /// Holds back `e` (detached, due) until its type's limit has a permit.
  void hold(unsigned shard, const std::string& id, entry& e, detail::permit_book& book,
            time_point now, claim_result& out) {
    auto& s = shards[shard];
    e.where = place::held;
    e.held_key = e.work.due - static_cast<int>(e.work.priority) * aging;
    s.held.emplace(e.work.due, id);
    s.held_by_type[e.work.type].emplace(e.held_key, id);
    book.waiting.insert(shard);
    const auto at = book.next_free(now);
    out.permit_at = out.permit_at ? std::min(*out.permit_at, at) : at;
  }

  /// Puts back into the due sets as many held tasks of each limited type as it has permits
  /// free (the claim then takes them in its order); reports when the rest may get one.
  void release_held(unsigned shard, time_point now, claim_result& out) {
    auto& s = shards[shard];
    for (auto& [type, book] : permits) {
      const auto held = s.held_by_type.find(type);
      if (held == s.held_by_type.end()) {
        continue;
      }
      for (auto free = book.free(now); free > 0 && !held->second.empty(); --free) {
        const std::string id = held->second.begin()->second;
        auto& e = s.tasks.at(id);
        s.held.erase({e.work.due, id});
        held->second.erase(held->second.begin());
        e.where = place::waiting;
        due_of(s, e.work.priority).emplace(e.work.due, id);
      }
      if (held->second.empty()) {
        s.held_by_type.erase(held);
        book.waiting.erase(shard);
      } else {
        const auto at = book.next_free(now);
        out.permit_at = out.permit_at ? std::min(*out.permit_at, at) : at;
      }
    }
  }

  /// Releases the concurrency permit of `token` (if any) and wakes one shard that holds
  /// tasks of its type back.
  void release_permit(const std::string& token) {
    for (auto& [type, book] : permits) {
      if (!book.release(token)) {
        continue;
      }
      for (auto it = book.waiting.begin(); it != book.waiting.end();) {
        if (shards[*it].held_by_type.contains(type)) {
          wake(*it);
          break;
        }
        it = book.waiting.erase(it);  // no longer holds any
      }
      return;
    }
  }

  /// A type whose limit is unchanged keeps its permits (several dispatchers of one store
  /// each set the same limits).
  void set_limits(const type_limits& limits) {
    for (auto it = permits.begin(); it != permits.end();) {
      const auto given = limits.find(it->first);
      const bool kept = given != limits.end() && given->second == it->second.limit();
      it = kept ? std::next(it) : permits.erase(it);
    }
    for (const auto& [type, limit] : limits) {
      if (limit.limited() && !permits.contains(type)) {
        permits.emplace(type, detail::permit_book(limit));
      }
    }
  }

  std::vector<limit_state> limit_states() {
    const auto now = clock();
    std::vector<limit_state> out;
    for (auto& [type, book] : permits) {
      limit_state st;
      st.type = type;
      st.limit = book.limit();
      st.running = book.running(now);
      st.recent_starts = book.recent_starts(now);
      for (const auto& s : shards) {
        if (const auto it = s.held_by_type.find(type); it != s.held_by_type.end()) {
          st.held += it->second.size();
        }
      }
      out.push_back(std::move(st));
    }
    return out;
  }

  std::vector<task> dead_letters(std::size_t offset, std::size_t limit) const {
    // Most recent first, ties by id descending (as ZRANGE ... REV): the dead sets walked
    // backwards.
    return merged_page(
        offset, limit, [](const auto& s) { return s.dead.rbegin(); },
        [](const auto& s) { return s.dead.rend(); },
        [](const auto& a, const auto& b) { return b < a; });
  }

  bool replay(const std::string& id) {
    unsigned shard = 0;
    entry* e = find(id, shard);
    if (e == nullptr || e->where != place::dead) {
      return false;
    }
    detach(shards[shard], id, *e);
    e->work.attempts = 0;  // the last error stays, as the reason it had died
    const auto now = clock();
    make_due(shard, id, *e, now);
    event(shard, event_kind::scheduled, e->work, "replayed", now);
    return true;
  }

  std::size_t purge(const std::string& id) {
    if (!id.empty()) {
      unsigned shard = 0;
      entry* e = find(id, shard);
      if (e == nullptr || e->where != place::dead) {
        return 0;
      }
      auto& s = shards[shard];
      drop_dead(s, s.dead.find(std::make_pair(e->dead_since, id)));
      return 1;
    }
    std::size_t removed = 0;
    for (auto& s : shards) {
      removed += s.dead.size();
      while (!s.dead.empty()) {
        drop_dead(s, s.dead.begin());
      }
    }
    return removed;
  }
};

memory_store::memory_store(asio::any_io_executor executor, unsigned shards,
                           dead_letter_limits limits)
    : impl_(std::make_unique<impl>(*this, std::move(executor), shards, limits)) {}

memory_store::~memory_store() = default;

const asio::any_io_executor& memory_store::get_executor() const noexcept {
  return impl_->executor;
}

const dead_letter_limits& memory_store::limits() const noexcept {
  return impl_->limits;
}

void memory_store::set_clock(std::function<time_point()> clock) {
  impl_->clock = std::move(clock);
}

void memory_store::set_priority_aging(std::chrono::milliseconds aging) {
  impl_->aging = aging;
}

void memory_store::set_events(events_options options) {
  impl_->events.configure(std::move(options));
}

asio::awaitable<std::unique_ptr<event_reader>> memory_store::events(event_query query) {
  co_return impl_->events.reader(std::move(query));
}

unsigned memory_store::shards() const noexcept {
  return static_cast<unsigned>(impl_->shards.size());
}

unsigned memory_store::shard_of(std::string_view id) const noexcept {
  return impl_->shard_for(id);
}

asio::awaitable<void> memory_store::schedule(task t) {
  impl_->schedule(std::move(t), false);
  co_return;
}

asio::awaitable<bool> memory_store::schedule_if_absent(task t) {
  co_return impl_->schedule(std::move(t), true);
}

asio::awaitable<dedup_outcome> memory_store::schedule_deduplicated(task t, dedup_options options) {
  co_return impl_->schedule_deduplicated(std::move(t), options);
}

asio::awaitable<std::optional<task>> memory_store::get(std::string id) {
  co_return impl_->get(id);
}

asio::awaitable<std::vector<task>> memory_store::browse(std::size_t offset, std::size_t limit) {
  co_return impl_->browse(offset, limit);
}

asio::awaitable<bool> memory_store::cancel(std::string id) {
  co_return impl_->cancel(id);
}

asio::awaitable<bool> memory_store::reschedule(std::string id, time_point due) {
  co_return impl_->reschedule(id, due);
}

asio::awaitable<store_stats> memory_store::stats() {
  co_return impl_->stats();
}

asio::awaitable<claim_result> memory_store::claim(unsigned shard, std::size_t limit,
                                                  std::chrono::milliseconds lease) {
  co_return impl_->claim(shard, limit, lease);
}

asio::awaitable<std::size_t> memory_store::ack(unsigned shard, std::vector<completion> done) {
  co_return impl_->ack(shard, done);
}

asio::awaitable<bool> memory_store::nack(unsigned shard, failure failed) {
  co_return impl_->nack(shard, failed);
}

asio::awaitable<std::vector<bool>> memory_store::extend(unsigned shard,
                                                        std::vector<lease_ref> leases,
                                                        std::chrono::milliseconds lease) {
  co_return impl_->extend(shard, leases, lease);
}

asio::awaitable<void> memory_store::pause(std::string type) {
  impl_->pause(type);
  co_return;
}

asio::awaitable<void> memory_store::resume(std::string type) {
  impl_->resume(type);
  co_return;
}

void memory_store::set_limits(type_limits limits) {
  impl_->set_limits(limits);
}

asio::awaitable<std::vector<limit_state>> memory_store::limit_states() {
  co_return impl_->limit_states();
}

asio::awaitable<pause_state> memory_store::paused() {
  co_return impl_->paused();
}

asio::awaitable<std::vector<task>> memory_store::dead_letters(std::size_t offset,
                                                              std::size_t limit) {
  co_return impl_->dead_letters(offset, limit);
}

asio::awaitable<bool> memory_store::replay(std::string id) {
  co_return impl_->replay(id);
}

asio::awaitable<std::size_t> memory_store::purge(std::string id) {
  co_return impl_->purge(id);
}

namespace {

std::shared_ptr<watcher> make_watcher(asio::any_io_executor executor,
                                      std::function<void(unsigned)> on_wake) {
  auto w = std::make_shared<watcher>();
  w->executor = std::move(executor);
  w->on_wake = std::move(on_wake);
  return w;
}

}  // namespace

asio::awaitable<void> memory_store::watch_wakes(std::function<void(unsigned shard)> on_wake) {
  auto executor = co_await asio::this_coro::executor;
  auto w = make_watcher(executor, std::move(on_wake));
  const registration registered(impl_->watchers, std::move(w));
  // Nothing to poll: the operations push wake-ups. The timer only parks this coroutine
  // until it is cancelled (operation_aborted ends the loop by exception).
  asio::steady_timer parked(executor, asio::steady_timer::time_point::max());
  for (;;) {
    co_await parked.async_wait(asio::use_awaitable);
  }
}

}  // namespace corvo::schedule
