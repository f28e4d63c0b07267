// The memory store's inspection and administration (memory_store.hpp): browse, stats, pause
// and resume, dead letters, replay, purge.

#include "memory_store_impl.hpp"

namespace corvo::schedule {

template <class First, class Last, class Before>
std::vector<task> memory_store::impl::merged_page(std::size_t offset, std::size_t limit,
                                                  First first, Last last, Before before) const {
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

std::vector<task> memory_store::impl::browse(std::size_t offset, std::size_t limit) const {
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
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<task> page;
  for (std::size_t i = offset; i < all.size() && page.size() < limit; ++i) {
    page.push_back(snapshot(*all[i].second));
  }
  return page;
}

void memory_store::impl::check_pausable(const std::string& type) {
  if (type == "*" || type.find('\n') != std::string::npos) {
    throw std::invalid_argument("pause: '" + type + "' is not a task type");
  }
}

void memory_store::impl::pause(const std::string& type) {
  check_pausable(type);
  if (type.empty()) {
    paused_all = true;
  } else {
    paused_types.insert(type);
  }
}

void memory_store::impl::resume(const std::string& type) {
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

pause_state memory_store::impl::paused() const {
  pause_state out;
  out.all = paused_all;
  out.types.assign(paused_types.begin(), paused_types.end());
  return out;
}

store_stats memory_store::impl::stats() const {
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

std::vector<task> memory_store::impl::dead_letters(std::size_t offset, std::size_t limit) const {
  // Most recent first, ties by id descending (as ZRANGE ... REV): the dead sets walked
  // backwards.
  return merged_page(
      offset, limit, [](const auto& s) { return s.dead.rbegin(); },
      [](const auto& s) { return s.dead.rend(); },
      [](const auto& a, const auto& b) { return b < a; });
}

bool memory_store::impl::replay(const std::string& id) {
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

std::size_t memory_store::impl::purge(const std::string& id) {
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

asio::awaitable<std::vector<task>> memory_store::browse(std::size_t offset, std::size_t limit) {
  co_return impl_->browse(offset, limit);
}

asio::awaitable<store_stats> memory_store::stats() {
  co_return impl_->stats();
}

asio::awaitable<void> memory_store::pause(std::string type) {
  impl_->pause(type);
  co_return;
}

asio::awaitable<void> memory_store::resume(std::string type) {
  impl_->resume(type);
  co_return;
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

}  // namespace corvo::schedule
