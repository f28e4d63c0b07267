#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <csignal>
#include <future>
#include <stdexcept>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct shutdown_record {
  int cleaned_up = 0;
  bool root_saw_cancel = false;
  /// Set once every worker runs (for a stop requested from another thread).
  std::promise<void> running;
};

// A worker that honours cancellation and needs a little asynchronous work to finish
// (ack what it did, close a connection).
asio::awaitable<void> worker(shutdown_record& record) {
  bool cancelled = false;
  try {
    co_await corvo::sleep_for(1h);
  } catch (const boost::system::system_error&) {
    cancelled = true;
  }
  if (cancelled) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await corvo::sleep_for(20ms);
    ++record.cleaned_up;
  }
}

// The application: a group of workers; raises `signal_number` once they are all running.
asio::awaitable<void> application(shutdown_record& record, int signal_number) {
  corvo::task_group workers(co_await asio::this_coro::executor);
  for (int i = 0; i < 8; ++i) {
    co_await workers.spawn(worker(record));
  }
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  if (signal_number != 0) {
    std::raise(signal_number);
  } else {
    record.running.set_value();
  }
  try {
    co_await workers.join();
  } catch (const boost::system::system_error&) {
    record.root_saw_cancel = true;
    throw;
  }
}

asio::awaitable<void> stubborn(std::chrono::milliseconds ignore_for, std::promise<void>& ignoring) {
  co_await asio::this_coro::throw_if_cancelled(false);
  co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
  ignoring.set_value();
  co_await corvo::sleep_for(ignore_for);
}

asio::awaitable<void> quick() {
  co_await corvo::sleep_for(1ms);
}

asio::awaitable<void> broken() {
  co_await corvo::sleep_for(1ms);
  throw std::runtime_error("root failed");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(runtime_suite)

BOOST_AUTO_TEST_CASE(sigterm_shuts_down_gracefully_within_the_deadline) {
  corvo::runtime rt({.shutdown_deadline = 10s});
  shutdown_record record;
  const auto result = rt.run(application(record, SIGTERM));
  BOOST_TEST(corvo::to_string(result) == "stopped");
  BOOST_TEST(corvo::exit_code(result) == 0);
  BOOST_TEST(record.root_saw_cancel);
  BOOST_TEST(record.cleaned_up == 8);  // every worker finished its clean-up
}

BOOST_AUTO_TEST_CASE(sigint_is_a_stop_request_too) {
  corvo::runtime rt({.shutdown_deadline = 10s});
  shutdown_record record;
  BOOST_TEST(corvo::to_string(rt.run(application(record, SIGINT))) == "stopped");
  BOOST_TEST(record.cleaned_up == 8);
}

BOOST_AUTO_TEST_CASE(request_stop_from_another_thread) {
  corvo::runtime rt({.shutdown_deadline = 10s, .stop_signals = {}});
  shutdown_record record;
  // The stop arrives once all eight workers run (not after a guessed delay).
  std::thread stopper([&rt, running = record.running.get_future()] {
    running.wait();
    rt.request_stop();
  });
  const auto result = rt.run(application(record, 0));
  stopper.join();
  BOOST_TEST(corvo::to_string(result) == "stopped");
  BOOST_TEST(record.cleaned_up == 8);
}

BOOST_AUTO_TEST_CASE(root_that_ignores_cancellation_hits_the_deadline) {
  corvo::runtime rt({.shutdown_deadline = 30ms, .stop_signals = {}});
  std::promise<void> ignoring;
  std::thread stopper([&rt, ready = ignoring.get_future()] {
    ready.wait();  // the root has disabled cancellation
    rt.request_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  const auto result = rt.run(stubborn(1h, ignoring));
  stopper.join();
  BOOST_TEST(corvo::to_string(result) == "deadline_exceeded");
  BOOST_TEST(corvo::exit_code(result) == 2);
  // It returned because of the deadline, long before the root's hour was up.
  BOOST_TEST((std::chrono::steady_clock::now() - started < 1h));
}

BOOST_AUTO_TEST_CASE(completed_and_failed_roots) {
  {
    corvo::runtime rt;
    BOOST_TEST(corvo::to_string(rt.run(quick())) == "completed");
  }
  {
    corvo::runtime rt;
    const auto result = rt.run(broken());
    BOOST_TEST(corvo::to_string(result) == "failed");
    BOOST_TEST(corvo::exit_code(result) == 1);
    BOOST_CHECK_THROW(std::rethrow_exception(rt.failure()), std::runtime_error);
  }
}

BOOST_AUTO_TEST_SUITE_END()
