#pragma once
// Exponential backoff with full jitter, and a retry loop for awaitables built on it.
//
// Full jitter (delay = uniform(0, min(max, initial * multiplier^attempt))) spreads the
// retries of many clients that failed together, so a recovering Redis or broker is not hit
// by a synchronized wave.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <random>
#include <type_traits>
#include <utility>

namespace corvo {

namespace asio = boost::asio;

struct backoff_policy {
  /// Ceiling of the first delay.
  std::chrono::milliseconds initial{100};
  /// Cap of every delay.
  std::chrono::milliseconds max{10'000};
  /// Growth of the ceiling per attempt (>= 1).
  double multiplier = 2.0;
  /// Full jitter when true; the ceiling itself when false.
  bool jitter = true;
};

/// The delay sequence of one retrying activity. Not thread-safe.
class backoff {
 public:
  explicit backoff(backoff_policy policy = {}, std::uint64_t seed = std::random_device{}());

  /// The delay before the next attempt; advances the attempt count.
  std::chrono::milliseconds next();

  /// The upper bound of the delay next() would return now.
  std::chrono::milliseconds ceiling() const noexcept;

  /// Starts over from `initial` (after a success).
  void reset() noexcept { attempt_ = 0; }

  /// Number of delays handed out since construction or reset().
  unsigned attempt() const noexcept { return attempt_; }

  const backoff_policy& policy() const noexcept { return policy_; }

 private:
  backoff_policy policy_;
  unsigned attempt_ = 0;
  std::mt19937_64 random_;
};

/// True unless the exception is system_error(operation_aborted): cancellation is never
/// retried.
bool retryable_by_default(const std::exception_ptr& e) noexcept;

struct retry_policy {
  backoff_policy delays{};
  /// Total attempts including the first; 0 retries forever.
  unsigned max_attempts = 5;
  /// Which failures are worth another attempt.
  std::function<bool(const std::exception_ptr&)> retryable = retryable_by_default;
};

/// Waits `delay` on the current coroutine's executor. Cancellation (terminal): throws
/// system_error(operation_aborted).
asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration delay);

/// Runs `operation()` (a callable returning asio::awaitable<T>) until it succeeds, sleeping
/// the policy's backoff between attempts. Rethrows the last failure when attempts run out
/// or the failure is not retryable. Cancellation (terminal) ends the loop at once with
/// system_error(operation_aborted).
template <class Operation>
auto retry(Operation operation, retry_policy policy = {})
    -> std::invoke_result_t<Operation&> {
  using result_type = typename std::invoke_result_t<Operation&>::value_type;
  backoff delays(policy.delays);
  for (unsigned attempt = 1;; ++attempt) {
    std::exception_ptr failure;
    try {
      if constexpr (std::is_void_v<result_type>) {
        co_await operation();
        co_return;
      } else {
        co_return co_await operation();
      }
    } catch (...) {
      failure = std::current_exception();
    }
    const bool out_of_attempts = policy.max_attempts != 0 && attempt >= policy.max_attempts;
    if (out_of_attempts || !policy.retryable(failure)) {
      std::rethrow_exception(failure);
    }
    co_await sleep_for(delays.next());
  }
}

}  // namespace corvo
