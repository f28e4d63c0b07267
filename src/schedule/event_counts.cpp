// The stores' event counts (event_counts.hpp): each store returns its tally's snapshot from
// the virtual store::events_written().
#include <charconv>
#include <corvo/schedule/event_counts.hpp>
#include <corvo/schedule/store.hpp>
#include <numeric>

#include "event_tally.hpp"

namespace corvo::schedule {

std::uint64_t event_counts::total() const noexcept {
  return std::accumulate(by_kind.begin(), by_kind.end(), std::uint64_t{0});
}

event_counts events_written(const store& tasks) {
  return tasks.events_written();
}

event_counts store::events_written() const noexcept {
  return {};
}

namespace detail {

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
