// The stores' event counts (event_counts.hpp): each store's tally, found by the store's
// address in a registry guarded by a mutex (touched when a store is made or destroyed and
// when a count is read, never when an event is counted).
#include <charconv>
#include <corvo/schedule/event_counts.hpp>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "event_tally.hpp"

namespace corvo::schedule {
namespace {

struct tally_registry {
  std::mutex mutex;
  std::unordered_map<const store*, const detail::event_tally*> tallies;
};

tally_registry& registry() {
  static tally_registry r;
  return r;
}

}  // namespace

std::uint64_t event_counts::total() const noexcept {
  return std::accumulate(by_kind.begin(), by_kind.end(), std::uint64_t{0});
}

event_counts events_written(const store& tasks) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.tallies.find(&tasks);
  return it == r.tallies.end() ? event_counts{} : it->second->snapshot();
}

namespace detail {

event_tally::event_tally(const store& owner) : owner_(&owner) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.tallies[owner_] = this;
}

event_tally::~event_tally() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.tallies.find(owner_);
  if (it != r.tallies.end() && it->second == this) {
    r.tallies.erase(it);
  }
}

bool event_tally::add_reported(std::string_view counts) noexcept {
  if (counts.empty()) {
    return true;
  }
  std::array<std::uint64_t, 6> parsed{};
  const char* p = counts.data();
  const char* end = counts.data() + counts.size();
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    if (i > 0) {
      if (p == end || *p != ' ') {
        return false;
      }
      ++p;
    }
    const auto [next, ec] = std::from_chars(p, end, parsed[i]);
    if (ec != std::errc{}) {
      return false;
    }
    p = next;
  }
  if (p != end) {
    return false;
  }
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    if (parsed[i] != 0) {
      counts_[i].fetch_add(parsed[i], std::memory_order_relaxed);
    }
  }
  return true;
}

event_counts event_tally::snapshot() const noexcept {
  event_counts out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    out.by_kind[i] = counts_[i].load(std::memory_order_relaxed);
  }
  return out;
}

}  // namespace detail
}  // namespace corvo::schedule
