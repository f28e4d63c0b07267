#include <charconv>
#include <corvo/schedule/limits.hpp>
#include <stdexcept>

namespace corvo::schedule {
namespace {

[[noreturn]] void bad_rate(std::string_view text, std::string_view what) {
  throw std::invalid_argument(std::string(what) + ": '" + std::string(text) +
                              "' is not a rate (N/DURATION with N >= 1, e.g. \"100/1s\", "
                              "\"5/250ms\", \"1000/1m\")");
}

// A positive number at the start of `text`; 0 when there is none.
std::uint64_t leading_number(std::string_view& text) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{}) {
    return 0;
  }
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return n;
}

}  // namespace

rate_limit parse_rate(std::string_view text, std::string_view what) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    bad_rate(text, what);
  }
  auto count = text.substr(0, slash);
  auto period = text.substr(slash + 1);
  const auto starts = leading_number(count);
  if (starts == 0 || !count.empty() || starts > UINT32_MAX) {
    bad_rate(text, what);
  }
  std::uint64_t amount = 1;  // "100/s": one second
  if (!period.empty() && period.front() >= '0' && period.front() <= '9') {
    amount = leading_number(period);
  }
  std::uint64_t unit_ms = 0;
  if (period == "ms") {
    unit_ms = 1;
  } else if (period == "s") {
    unit_ms = 1000;
  } else if (period == "m") {
    unit_ms = 60'000;
  } else if (period == "h") {
    unit_ms = 3'600'000;
  }
  if (unit_ms == 0 || amount == 0 || amount > 24 * 3'600'000ULL) {
    bad_rate(text, what);
  }
  return rate_limit{static_cast<std::uint32_t>(starts),
                    std::chrono::milliseconds(static_cast<std::int64_t>(amount * unit_ms))};
}

std::string to_string(const rate_limit& rate) {
  const auto ms = rate.per.count();
  std::string period;
  if (ms % 3'600'000 == 0) {
    period = std::to_string(ms / 3'600'000) + "h";
  } else if (ms % 60'000 == 0) {
    period = std::to_string(ms / 60'000) + "m";
  } else if (ms % 1000 == 0) {
    period = std::to_string(ms / 1000) + "s";
  } else {
    period = std::to_string(ms) + "ms";
  }
  return std::to_string(rate.starts) + "/" + period;
}

}  // namespace corvo::schedule
