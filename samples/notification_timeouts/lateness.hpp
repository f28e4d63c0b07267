#pragma once
// Lateness of handler starts (start − due time): percentiles and a text histogram.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <vector>

namespace notification_timeouts {

class lateness_histogram {
 public:
  void add(std::chrono::microseconds lateness) {
    samples_.push_back(lateness.count());
    sorted_ = false;
  }
  std::size_t size() const noexcept { return samples_.size(); }

  /// The q-quantile (0 ≤ q ≤ 1) in milliseconds; 0 without samples.
  double quantile_ms(double q) const;
  /// Samples below zero (a handler that started before its due time).
  std::size_t early() const;

  /// Bucketed counts with bars, then p50/p90/p99/p99.9/max.
  void print(std::ostream& out) const;

 private:
  mutable std::vector<std::int64_t> samples_;
  mutable bool sorted_ = false;
  void sort() const;
};

}  // namespace notification_timeouts
