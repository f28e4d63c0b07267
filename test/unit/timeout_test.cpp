#include <corvo/core/backoff.hpp>
#include <corvo/core/timeout.hpp>

#include <boost/test/unit_test.hpp>

#include "support/run_coroutine.hpp"

#include <stdexcept>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

asio::awaitable<std::string> answer_after(std::chrono::milliseconds delay, bool& cancelled) {
  try {
    co_await corvo::sleep_for(delay);
  } catch (const boost::system::system_error&) {
    cancelled = true;
    throw;
  }
  co_return "answer";
}

asio::awaitable<void> fail_now() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  throw std::invalid_argument("bad input");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(timeout_suite)

BOOST_AUTO_TEST_CASE(result_arrives_before_the_deadline) {
  asio::io_context ctx;
  bool cancelled = false;
  const auto value =
      corvo::test::run(ctx, corvo::with_timeout(answer_after(1ms, cancelled), 10s));
  BOOST_TEST(value == "answer");
  BOOST_TEST(!cancelled);
}

BOOST_AUTO_TEST_CASE(deadline_cancels_the_operation_and_reports_timed_out) {
  asio::io_context ctx;
  bool cancelled = false;
  BOOST_CHECK_EXCEPTION(
      corvo::test::run(ctx, corvo::with_timeout(answer_after(1h, cancelled), 5ms)),
      boost::system::system_error,
      [](const auto& e) { return e.code() == corvo::error::timed_out; });
  BOOST_TEST(cancelled);
}

BOOST_AUTO_TEST_CASE(a_failure_is_reported_at_once_not_as_a_timeout) {
  asio::io_context ctx;
  // Had the failure waited for the 1 h timer, run() would not return (the CTest timeout
  // fails the test); reporting timed_out instead of the cause would fail the check.
  BOOST_CHECK_THROW(corvo::test::run(ctx, corvo::with_timeout(fail_now(), 1h)),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(timed_out_has_a_readable_message) {
  const boost::system::error_code ec = corvo::error::timed_out;
  BOOST_TEST(ec.message() == "operation timed out");
  BOOST_TEST(std::string(ec.category().name()) == "corvo");
}

BOOST_AUTO_TEST_SUITE_END()
