#pragma once
// Internal: which partitions' workers run, when at most `slots` may run at once.
//
// A partition with messages to handle either gets a free slot at once or waits in line.
// A worker that gives its slot up with messages left (it yielded after its fair share, see
// should_yield) goes to the back of the line, behind every partition that was already
// waiting: waiting partitions take turns (round-robin), and none can keep a slot while
// another waits. A worker ending without messages left just frees its slot.
//
// Plain code without Kafka, driven by unit tests (kafka_partition_scheduler_test); not
// thread-safe. `Partition` is a cheap handle compared by identity (a shared_ptr, an id).

#include <algorithm>
#include <cstddef>
#include <deque>
#include <vector>

namespace corvo::kafka::detail {

template <class Partition>
class partition_scheduler {
 public:
  explicit partition_scheduler(std::size_t slots) : slots_(slots == 0 ? 1 : slots) {}

  /// `p` (not running) has messages: true when it takes a free slot now (the caller starts
  /// its worker); false when it waits in line (or already did).
  bool want(const Partition& p) {
    if (is_waiting(p)) {
      return false;
    }
    if (running_ < slots_ && waiting_.empty()) {
      ++running_;
      return true;
    }
    waiting_.push_back(p);
    return false;
  }

  /// True when a running worker should give its slot up: another partition waits.
  bool should_yield() const noexcept { return !waiting_.empty(); }

  /// The worker of `p` ended and freed its slot; with `messages_left` it goes to the back of
  /// the line. Returns the partitions to start now, in line order (each holds a slot).
  std::vector<Partition> finished(const Partition& p, bool messages_left) {
    if (running_ > 0) {
      --running_;
    }
    if (messages_left && !is_waiting(p)) {
      waiting_.push_back(p);
    }
    return next();
  }

  /// Takes `p` out of the line (revoked, or nothing left to handle).
  void remove(const Partition& p) { std::erase(waiting_, p); }

  /// Empties the line (stopping); running workers keep their slots until finished().
  void clear() noexcept { waiting_.clear(); }

  std::size_t running() const noexcept { return running_; }
  std::size_t waiting() const noexcept { return waiting_.size(); }
  bool is_waiting(const Partition& p) const {
    return std::find(waiting_.begin(), waiting_.end(), p) != waiting_.end();
  }

 private:
  std::vector<Partition> next() {
    std::vector<Partition> start;
    while (running_ < slots_ && !waiting_.empty()) {
      start.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
      ++running_;
    }
    return start;
  }

  std::size_t slots_;
  std::size_t running_ = 0;
  std::deque<Partition> waiting_;  // in line for a slot, first come first served
};

}  // namespace corvo::kafka::detail
