#include <corvo/core/backoff.hpp>

#include <boost/test/unit_test.hpp>

#include "support/run_coroutine.hpp"

#include <stdexcept>

namespace asio = boost::asio;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(backoff_suite)

BOOST_AUTO_TEST_CASE(ceiling_grows_exponentially_and_is_capped) {
  corvo::backoff b({.initial = 100ms, .max = 1000ms, .multiplier = 2.0, .jitter = false});
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 7; ++i) {
    delays.push_back(b.next());
  }
  const std::vector<std::chrono::milliseconds> expected{100ms, 200ms, 400ms, 800ms,
                                                        1000ms, 1000ms, 1000ms};
  BOOST_TEST(delays == expected, boost::test_tools::per_element());
  b.reset();
  BOOST_TEST(b.next() == 100ms);
}

BOOST_AUTO_TEST_CASE(full_jitter_stays_within_the_ceiling_and_spreads) {
  corvo::backoff b({.initial = 100ms, .max = 10'000ms}, /*seed=*/42);
  for (int i = 0; i < 1000; ++i) {
    const auto bound = b.ceiling();
    const auto d = b.next();
    BOOST_TEST(d.count() >= 0);
    BOOST_TEST(d <= bound);
  }
  // At the cap, 1000 draws from [0, 10 s] are not all alike and cover both halves.
  int low = 0, high = 0;
  for (int i = 0; i < 1000; ++i) {
    (b.next() < 5000ms ? low : high)++;
  }
  BOOST_TEST(low > 300);
  BOOST_TEST(high > 300);
}

BOOST_AUTO_TEST_CASE(many_attempts_saturate_without_overflow) {
  corvo::backoff b({.initial = 1ms, .max = 30'000ms, .multiplier = 10.0, .jitter = false});
  for (int i = 0; i < 500; ++i) {
    BOOST_TEST(b.next() <= 30'000ms);
  }
  BOOST_TEST(b.next() == 30'000ms);
}

asio::awaitable<int> flaky(int& calls, int succeed_on) {
  ++calls;
  if (calls < succeed_on) {
    throw std::runtime_error("attempt " + std::to_string(calls) + " failed");
  }
  co_return calls * 10;
}

BOOST_AUTO_TEST_CASE(retry_returns_the_first_success) {
  asio::io_context ctx;
  int calls = 0;
  corvo::retry_policy policy{.delays = {1ms, 2ms}, .max_attempts = 5};
  const int value =
      corvo::test::run(ctx, corvo::retry([&] { return flaky(calls, 3); }, policy));
  BOOST_TEST(value == 30);
  BOOST_TEST(calls == 3);
}

BOOST_AUTO_TEST_CASE(retry_rethrows_the_last_failure_after_max_attempts) {
  asio::io_context ctx;
  int calls = 0;
  corvo::retry_policy policy{.delays = {1ms, 2ms}, .max_attempts = 4};
  BOOST_CHECK_EXCEPTION(
      corvo::test::run(ctx, corvo::retry([&] { return flaky(calls, 100); }, policy)),
      std::runtime_error,
      [](const std::runtime_error& e) { return std::string(e.what()) == "attempt 4 failed"; });
  BOOST_TEST(calls == 4);
}

BOOST_AUTO_TEST_CASE(retry_stops_at_a_non_retryable_failure) {
  asio::io_context ctx;
  int calls = 0;
  corvo::retry_policy policy{.delays = {1ms, 2ms}, .max_attempts = 10};
  policy.retryable = [](const std::exception_ptr&) { return false; };
  BOOST_CHECK_THROW(corvo::test::run(ctx, corvo::retry([&] { return flaky(calls, 5); }, policy)),
                    std::runtime_error);
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(cancellation_is_never_retried) {
  BOOST_TEST(!corvo::retryable_by_default(std::make_exception_ptr(
      boost::system::system_error(asio::error::operation_aborted))));
  BOOST_TEST(corvo::retryable_by_default(std::make_exception_ptr(
      boost::system::system_error(asio::error::connection_refused))));
  BOOST_TEST(corvo::retryable_by_default(std::make_exception_ptr(std::runtime_error("x"))));
}

BOOST_AUTO_TEST_SUITE_END()
