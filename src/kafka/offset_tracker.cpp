#include <corvo/kafka/detail/offset_tracker.hpp>

#include <algorithm>

namespace corvo::kafka::detail {

bool offset_tracker::track(std::int64_t offset) {
  if (last_tracked_ && offset <= *last_tracked_) {
    return false;
  }
  if (committable_ && offset < *committable_) {
    return false;
  }
  last_tracked_ = offset;
  entries_.push_back({offset, false});
  return true;
}

std::optional<std::int64_t> offset_tracker::finish(std::int64_t offset) {
  const auto it =
      std::lower_bound(entries_.begin(), entries_.end(), offset,
                       [](const entry& e, std::int64_t value) { return e.offset < value; });
  if (it == entries_.end() || it->offset != offset || it->finished) {
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
