#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>

#include <algorithm>
#include <cmath>

namespace corvo {

backoff::backoff(backoff_policy policy, std::uint64_t seed) : policy_(policy), random_(seed) {
  policy_.multiplier = std::max(1.0, policy_.multiplier);
  policy_.initial = std::max(policy_.initial, std::chrono::milliseconds{0});
  policy_.max = std::max(policy_.max, policy_.initial);
}

std::chrono::milliseconds backoff::ceiling() const noexcept {
  // Grow in floating point and clamp before converting, so large attempt counts saturate
  // at max instead of overflowing.
  const double grown = static_cast<double>(policy_.initial.count()) *
                       std::pow(policy_.multiplier, static_cast<double>(attempt_));
  const double capped = std::min(grown, static_cast<double>(policy_.max.count()));
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(capped));
}

std::chrono::milliseconds backoff::next() {
  const auto bound = ceiling();
  if (attempt_ < 64) {
    ++attempt_;
  }
  if (!policy_.jitter || bound.count() == 0) {
    return bound;
  }
  std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(0, bound.count());
  return std::chrono::milliseconds(pick(random_));
}

bool retryable_by_default(const std::exception_ptr& e) noexcept {
  return !is_operation_aborted(e);
}

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration delay) {
  // (Not as a constructor argument: GCC 12 may destroy such a co_await temporary twice.)
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, delay);
  co_await timer.async_wait(asio::use_awaitable);
}

}  // namespace corvo
