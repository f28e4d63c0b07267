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
// librdkafka hands over a partition's messages in increasing offsets unless its fetch
// position moved back within the assignment (rd_kafka_seek, an offset reset, a log
// truncated after a leader change): an offset at or below the last one tracked is such a
// rewind. Tracking restarts there: the messages tracked at or after it are forgotten (they
// are fetched again, or were truncated away), earlier unfinished ones stay, and the offset
// to store goes back to the rewind point if it was past it, so nothing from there on is
// skipped. Each tracked message gets a ticket, and finish() takes the ticket, so a message
// handed out before the rewind cannot finish its re-fetched namesake.
//
// Plain code without Kafka, driven by unit tests; not thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace corvo::kafka::detail {

class offset_tracker {
 public:
  struct tracked {
    std::uint64_t ticket;  ///< for finish()
    bool rewound;          ///< the offset went back: see the header comment
  };

  /// Records a fetched message (see the header comment for offsets going back).
  tracked track(std::int64_t offset);

  /// Marks a tracked message finished (handled or dead-lettered). Returns the offset to
  /// store when it advanced (the next offset to consume), else nullopt. Finishing a ticket
  /// that is not tracked (any more), or twice, changes nothing and returns nullopt.
  std::optional<std::int64_t> finish(std::uint64_t ticket);

  /// The offset to store now: one past the last message of the finished prefix (or the
  /// rewind point, see above); nullopt before the first message finished.
  std::optional<std::int64_t> committable() const noexcept { return committable_; }

  /// Messages tracked and not yet finished, or finished behind an unfinished one.
  std::size_t pending() const noexcept { return entries_.size(); }

  /// The highest offset tracked since the last rewind; nullopt before the first.
  std::optional<std::int64_t> last_tracked() const noexcept { return last_tracked_; }

 private:
  struct entry {
    std::int64_t offset;
    std::uint64_t ticket;
    bool finished;
  };
  std::deque<entry> entries_;  // increasing offsets and tickets; the front is unfinished
  std::optional<std::int64_t> committable_;
  std::optional<std::int64_t> last_tracked_;
  std::uint64_t next_ticket_ = 0;
};

}  // namespace corvo::kafka::detail
