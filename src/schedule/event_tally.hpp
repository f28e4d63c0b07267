#pragma once
// A store's count of the events it wrote (event_counts.hpp): the store owns a tally and
// returns its snapshot from store::events_written().

#include <atomic>
#include <corvo/schedule/event_counts.hpp>
#include <cstdint>
#include <string_view>

namespace corvo::schedule::detail {

class event_tally {
 public:
  event_tally() = default;
  event_tally(const event_tally&) = delete;
  event_tally& operator=(const event_tally&) = delete;

  void add(event_kind kind, std::uint64_t n = 1) noexcept {
    counts_[static_cast<std::size_t>(kind)].fetch_add(n, std::memory_order_relaxed);
  }
  /// Adds the counts a Redis script reported: six numbers separated by spaces, in the order
  /// of event_kind ("" when the script wrote none: events off). False for another text
  /// (nothing is added then).
  bool add_reported(std::string_view counts) noexcept;
  event_counts snapshot() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, 6> counts_{};
};

}  // namespace corvo::schedule::detail
