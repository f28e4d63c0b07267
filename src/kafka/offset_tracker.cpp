#include <algorithm>
#include <corvo/kafka/detail/offset_tracker.hpp>

namespace corvo::kafka::detail {

offset_tracker::tracked offset_tracker::track(std::int64_t offset) {
  bool rewound = false;
  if (last_tracked_ && offset <= *last_tracked_) {
    rewound = true;
    while (!entries_.empty() && entries_.back().offset >= offset) {
      entries_.pop_back();
    }
    // Left: only messages before the rewind point. With none unfinished, nothing from the
    // rewind point on is finished.
    if (entries_.empty() && (!committable_ || *committable_ > offset)) {
      committable_ = offset;
    }
  }
  last_tracked_ = offset;
  const std::uint64_t ticket = next_ticket_++;
  entries_.push_back({offset, ticket, false});
  return {ticket, rewound};
}

std::optional<std::int64_t> offset_tracker::finish(std::uint64_t ticket) {
  const auto it =
      std::lower_bound(entries_.begin(), entries_.end(), ticket,
                       [](const entry& e, std::uint64_t value) { return e.ticket < value; });
  if (it == entries_.end() || it->ticket != ticket || it->finished) {
    return std::nullopt;
  }
  it->finished = true;
  std::optional<std::int64_t> advanced;
  while (!entries_.empty() && entries_.front().finished) {
    advanced = entries_.front().offset + 1;
    entries_.pop_front();
  }
  if (advanced) {
    committable_ = advanced;
  }
  return advanced;
}

}  // namespace corvo::kafka::detail
