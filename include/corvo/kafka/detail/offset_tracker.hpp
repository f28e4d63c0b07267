#pragma once
// Internal: which offset of one partition may be stored (and so committed).
//
// At-least-once means a committed offset never passes a message whose handler has not
// finished: the offset to store is the one after the longest run of finished messages from
// the start of what was fetched. Messages are tracked in fetch order (offsets increase but
// need not be contiguous: compaction and transaction markers leave gaps) and may finish in
// any order; a message that never finishes (its handler was cancelled) holds the stored
// offset back, so it is fetched again after a restart or rebalance.
//
// Plain code without Kafka, driven by unit tests; not thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace corvo::kafka::detail {

class offset_tracker {
 public:
  /// Records a fetched message. Returns false, and ignores it, for an offset at or below
  /// one already tracked (a message fetched twice, e.g. after a pause and resume).
  bool track(std::int64_t offset);

  /// Marks a tracked message finished (handled or dead-lettered). Returns the offset to
  /// store when it advanced (the next offset to consume), else nullopt. Finishing an offset
  /// that is not tracked, or twice, changes nothing and returns nullopt.
  std::optional<std::int64_t> finish(std::int64_t offset);

  /// The offset to store now: one past the last message of the finished prefix; nullopt
  /// before the first message finished.
  std::optional<std::int64_t> committable() const noexcept { return committable_; }

  /// Messages tracked and not yet finished, or finished behind an unfinished one.
  std::size_t pending() const noexcept { return entries_.size(); }

  /// The highest offset tracked so far; nullopt before the first.
  std::optional<std::int64_t> last_tracked() const noexcept { return last_tracked_; }

 private:
  struct entry {
    std::int64_t offset;
    bool finished;
  };
  std::deque<entry> entries_;  // increasing offsets; the front is unfinished
  std::optional<std::int64_t> committable_;
  std::optional<std::int64_t> last_tracked_;
};

}  // namespace corvo::kafka::detail
