#pragma once
// The permits of one limited task type in process (memory_store): the in-memory form of the
// Redis store's `running` and `starts` sorted sets (redis_scripts.hpp, claim).

#include <algorithm>
#include <corvo/schedule/limits.hpp>
#include <corvo/schedule/task.hpp>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

namespace corvo::schedule::detail {

class permit_book {
 public:
  explicit permit_book(type_limit limit) : limit_(limit) {}

  const type_limit& limit() const noexcept { return limit_; }

  /// Permits free at `now`, after dropping the concurrency permits whose lease deadline has
  /// passed and the starts that left the rate window.
  std::uint64_t free(time_point now) {
    expire(now);
    auto free = std::numeric_limits<std::uint64_t>::max();
    if (limit_.concurrency) {
      free = *limit_.concurrency > running_.size() ? *limit_.concurrency - running_.size() : 0;
    }
    if (limit_.rate) {
      const std::uint64_t left =
          limit_.rate->starts > starts_.size() ? limit_.rate->starts - starts_.size() : 0;
      free = std::min(free, left);
    }
    return free;
  }

  /// With no permit free at `now` (free(now) == 0): the earliest time one may be. Both
  /// limits must allow a start, so it is the later of the earliest concurrency deadline and
  /// the time the oldest start leaves the rate window.
  time_point next_free(time_point now) const {
    time_point at = now;
    if (limit_.concurrency && running_.size() >= *limit_.concurrency && !running_.empty()) {
      at = std::max(at, running_.begin()->first);
    }
    if (limit_.rate && starts_.size() >= limit_.rate->starts && !starts_.empty()) {
      at = std::max(at, starts_.front() + std::chrono::duration_cast<std::chrono::microseconds>(
                                              limit_.rate->per));
    }
    return at;
  }

  /// Takes a permit for the run `token` (check free() first).
  void take(const std::string& token, time_point deadline, time_point now) {
    if (limit_.concurrency) {
      deadlines_[token] = deadline;
      running_.emplace(deadline, token);
    }
    if (limit_.rate) {
      starts_.push_back(now);
    }
  }

  /// Releases the concurrency permit of `token`; false when it holds none here.
  bool release(const std::string& token) {
    const auto it = deadlines_.find(token);
    if (it == deadlines_.end()) {
      return false;
    }
    running_.erase({it->second, token});
    deadlines_.erase(it);
    return true;
  }

  /// Moves the deadline of `token`'s permit (a lease renewal); no-op when it holds none.
  void extend(const std::string& token, time_point deadline) {
    const auto it = deadlines_.find(token);
    if (it == deadlines_.end()) {
      return;
    }
    running_.erase({it->second, token});
    it->second = deadline;
    running_.emplace(deadline, token);
  }

  std::uint64_t running(time_point now) {
    expire(now);
    return running_.size();
  }
  std::uint64_t recent_starts(time_point now) {
    expire(now);
    return starts_.size();
  }

  /// Shards that hold tasks of the type back (a release wakes one of them).
  std::set<unsigned> waiting;

 private:
  void expire(time_point now) {
    while (!running_.empty() && running_.begin()->first <= now) {
      deadlines_.erase(running_.begin()->second);
      running_.erase(running_.begin());
    }
    if (limit_.rate) {
      const auto window = std::chrono::duration_cast<std::chrono::microseconds>(limit_.rate->per);
      while (!starts_.empty() && starts_.front() <= now - window) {
        starts_.pop_front();
      }
    }
  }

  type_limit limit_;
  std::unordered_map<std::string, time_point> deadlines_;
  std::set<std::pair<time_point, std::string>> running_;  // (lease deadline, token)
  std::deque<time_point> starts_;                         // in order
};

}  // namespace corvo::schedule::detail
