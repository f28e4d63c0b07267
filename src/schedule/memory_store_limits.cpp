// The memory store's global limits (memory_store.hpp, limits.hpp): permits taken by the
// claim, tasks held back for want of one and released when one frees.

#include "memory_store_impl.hpp"

namespace corvo::schedule {

void memory_store::impl::hold(unsigned shard, const std::string& id, entry& e,
                              detail::permit_book& book, time_point now, claim_result& out) {
  auto& s = shards[shard];
  e.where = place::held;
  e.held_key = e.work.due - static_cast<int>(e.work.priority) * aging;
  s.held.emplace(e.work.due, id);
  s.held_by_type[e.work.type].emplace(e.held_key, id);
  book.waiting.insert(shard);
  const auto at = book.next_free(now);
  out.permit_at = out.permit_at ? std::min(*out.permit_at, at) : at;
}

void memory_store::impl::release_held(unsigned shard, time_point now, claim_result& out) {
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

void memory_store::impl::release_permit(const std::string& token) {
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

void memory_store::impl::set_limits(const type_limits& limits) {
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

std::vector<limit_state> memory_store::impl::limit_states() {
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

void memory_store::set_limits(type_limits limits) {
  impl_->set_limits(limits);
}

asio::awaitable<std::vector<limit_state>> memory_store::limit_states() {
  co_return impl_->limit_states();
}

}  // namespace corvo::schedule
