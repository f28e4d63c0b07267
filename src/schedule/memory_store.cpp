// The memory store (memory_store.hpp): its construction and the task operations (schedule,
// deduplication, get, cancel, reschedule, claim, ack, nack, extend, the wake-up watch).

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/trace.hpp>

#include "memory_store_impl.hpp"

namespace corvo::schedule {
namespace {

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
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

}  // namespace

void memory_store::impl::validate(const task& t) {
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

void memory_store::impl::reset(task& t) {
  if (t.max_attempts == 0) {
    t.max_attempts = default_max_attempts;
  }
  t.attempts = 0;
  t.last_error.clear();
  t.occurrence = t.due;
  t.state = task_state::scheduled;
}

bool memory_store::impl::schedule(task t, bool if_absent) {
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

namespace {

// Throws std::invalid_argument for a deduplication window <= 0.
void check_window(const task& t, const dedup_options& options) {
  if (options.window <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("task '" + t.id + "': the deduplication window must be positive");
  }
}

}  // namespace

dedup_outcome memory_store::impl::schedule_deduplicated(task t, dedup_options options) {
  check_window(t, options);
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
    if (it != s.tasks.end() && it->second.waits()) {
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

dedup_result memory_store::impl::schedule_deduplicated_by_key(task t, const std::string& key,
                                                              dedup_options options) {
  check_window(t, options);
  validate(t);
  if (key.empty()) {
    throw std::invalid_argument("task '" + t.id + "': the deduplication key is empty");
  }
  const auto now = clock();
  while (!key_window_ends.empty() && key_window_ends.begin()->first <= now) {
    key_windows.erase(key_window_ends.begin()->second);
    key_window_ends.erase(key_window_ends.begin());
  }
  const auto closes = now + std::chrono::duration_cast<std::chrono::microseconds>(options.window);
  dedup_result result;
  const auto open = key_windows.find(key);
  if (open == key_windows.end()) {
    key_windows.emplace(key, key_window{t.id, closes});
    key_window_ends.emplace(closes, key);
    schedule(std::move(t), false);
    return result;
  }
  if (options.mode == dedup_mode::drop) {
    result.outcome = dedup_outcome::dropped;
    return result;
  }
  auto& window = open->second;
  std::string pending = std::exchange(window.id, t.id);
  unsigned pending_shard = 0;
  entry* e = find(pending, pending_shard);
  const bool waits = e != nullptr && e->waits();
  if (waits && pending != t.id) {  // the same id is replaced in place by the schedule
    auto& s = shards[pending_shard];
    detach(s, pending, *e);
    event(pending_shard, event_kind::cancelled, e->work, "deduplicated");
    s.tasks.erase(pending);
  }
  schedule(std::move(t), false);
  if (waits) {
    result.outcome = dedup_outcome::replaced;
    result.replaced_id = std::move(pending);
    return result;
  }
  // The pending task ran, runs or is gone: a new window.
  key_window_ends.erase({window.closes, key});
  window.closes = closes;
  key_window_ends.emplace(closes, key);
  return result;
}

std::optional<task> memory_store::impl::get(const std::string& id) {
  unsigned shard = 0;
  const entry* e = find(id, shard);
  if (e == nullptr) {
    return std::nullopt;
  }
  return snapshot(*e);
}

bool memory_store::impl::cancel(const std::string& id) {
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

bool memory_store::impl::reschedule(const std::string& id, time_point due) {
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

claim_result memory_store::impl::claim(unsigned shard, std::size_t limit,
                                       std::chrono::milliseconds lease) {
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

std::size_t memory_store::impl::ack(unsigned shard, const std::vector<completion>& done) {
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

bool memory_store::impl::nack(unsigned shard, failure& failed) {
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

std::vector<bool> memory_store::impl::extend(unsigned shard, const std::vector<lease_ref>& leases,
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

memory_store::memory_store(asio::any_io_executor executor, unsigned shards,
                           dead_letter_limits limits)
    : impl_(std::make_unique<impl>(std::move(executor), shards, limits)) {}

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

asio::awaitable<dedup_result> memory_store::schedule_deduplicated_by_key(task t, std::string key,
                                                                         dedup_options options) {
  co_return impl_->schedule_deduplicated_by_key(std::move(t), key, options);
}

event_counts memory_store::events_written() const noexcept {
  return impl_->tally.snapshot();
}

asio::awaitable<std::optional<task>> memory_store::get(std::string id) {
  co_return impl_->get(id);
}

asio::awaitable<bool> memory_store::cancel(std::string id) {
  co_return impl_->cancel(id);
}

asio::awaitable<bool> memory_store::reschedule(std::string id, time_point due) {
  co_return impl_->reschedule(id, due);
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
  const registration registered(impl_->watchers, w);
  // Registered: a wake-up before now reached no one, so every shard is woken once.
  for (unsigned s = 0; s < shards(); ++s) {
    asio::post(executor, [w, s] {
      if (w->active) {
        w->on_wake(s);
      }
    });
  }
  // Nothing to poll: the operations push wake-ups. The timer only parks this coroutine
  // until it is cancelled (operation_aborted ends the loop by exception).
  asio::steady_timer parked(executor, asio::steady_timer::time_point::max());
  for (;;) {
    co_await parked.async_wait(asio::use_awaitable);
  }
}

}  // namespace corvo::schedule
