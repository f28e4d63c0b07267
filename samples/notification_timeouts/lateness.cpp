#include "lateness.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

namespace notification_timeouts {

void lateness_histogram::sort() const {
  if (!sorted_) {
    std::sort(samples_.begin(), samples_.end());
    sorted_ = true;
  }
}

double lateness_histogram::quantile_ms(double q) const {
  if (samples_.empty()) {
    return 0;
  }
  sort();
  const auto index = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples_.size()))) ;
  const auto at = std::min(samples_.size() - 1, index == 0 ? 0 : index - 1);
  return static_cast<double>(samples_[at]) / 1000.0;
}

std::size_t lateness_histogram::early() const {
  return static_cast<std::size_t>(
      std::count_if(samples_.begin(), samples_.end(), [](std::int64_t us) { return us < 0; }));
}

void lateness_histogram::print(std::ostream& out) const {
  // Upper bounds in microseconds; the last bucket is open.
  constexpr std::array<std::int64_t, 10> bounds{250, 500, 1000, 2000, 5000, 10'000, 20'000,
                                                50'000, 100'000, 1'000'000};
  std::array<std::size_t, bounds.size() + 1> counts{};
  for (const auto us : samples_) {
    const auto it = std::upper_bound(bounds.begin(), bounds.end(), us);
    ++counts[static_cast<std::size_t>(it - bounds.begin())];
  }
  const auto widest = *std::max_element(counts.begin(), counts.end());
  const auto label = [](std::int64_t us) {
    std::ostringstream s;
    if (us < 1000) {
      s << us << " us";
    } else {
      s << us / 1000 << " ms";
    }
    return s.str();
  };
  out << "lateness (handler start - due time), " << samples_.size() << " tasks:\n";
  for (std::size_t i = 0; i < counts.size(); ++i) {
    std::string range = i < bounds.size() ? "< " + label(bounds[i]) : ">= " + label(bounds.back());
    const auto bar = widest == 0 ? 0 : (counts[i] * 50 + widest - 1) / widest;
    const double share =
        samples_.empty() ? 0.0 : 100.0 * static_cast<double>(counts[i]) / samples_.size();
    out << "  " << std::setw(10) << std::left << range << std::right << std::setw(8) << counts[i]
        << "  " << std::fixed << std::setprecision(1) << std::setw(5) << share << "%  "
        << std::string(bar, '#') << "\n";
  }
  out << std::fixed << std::setprecision(3) << "  p50 " << quantile_ms(0.5) << " ms   p90 "
      << quantile_ms(0.9) << " ms   p99 " << quantile_ms(0.99) << " ms   p99.9 "
      << quantile_ms(0.999) << " ms   max " << quantile_ms(1.0) << " ms\n";
}

}  // namespace notification_timeouts
