// corvo::notifier: who wakes, what is lost, and cancellation.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/notifier.hpp>
#include <exception>

namespace asio = boost::asio;

namespace {

asio::awaitable<void> wait_once(corvo::notifier& n, int& woken) {
  co_await n.wait();
  ++woken;
}

void spawn_waiter(asio::io_context& ctx, corvo::notifier& n, int& woken) {
  asio::co_spawn(ctx, wait_once(n, woken), [](std::exception_ptr e) {
    if (e) {
      std::rethrow_exception(e);
    }
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(notifier_suite)

BOOST_AUTO_TEST_CASE(notify_one_wakes_one_waiter_and_notify_all_the_rest) {
  asio::io_context ctx;
  corvo::notifier n(ctx.get_executor());
  int woken = 0;
  for (int i = 0; i < 3; ++i) {
    spawn_waiter(ctx, n, woken);
  }
  ctx.poll();
  BOOST_TEST(n.waiters() == 3u);
  n.notify_one();
  ctx.poll();
  BOOST_TEST(woken == 1);
  BOOST_TEST(n.waiters() == 2u);
  n.notify_all();
  ctx.poll();
  BOOST_TEST(woken == 3);
  BOOST_TEST(n.waiters() == 0u);
}

BOOST_AUTO_TEST_CASE(a_notification_with_nobody_waiting_is_not_remembered) {
  asio::io_context ctx;
  corvo::notifier n(ctx.get_executor());
  n.notify_all();
  n.notify_one();
  int woken = 0;
  spawn_waiter(ctx, n, woken);
  ctx.poll();
  BOOST_TEST(woken == 0);
  BOOST_TEST(n.waiters() == 1u);
  n.notify_one();
  ctx.poll();
  BOOST_TEST(woken == 1);
}

BOOST_AUTO_TEST_CASE(cancelling_a_waiter_throws_operation_aborted_and_leaves_the_others) {
  asio::io_context ctx;
  corvo::notifier n(ctx.get_executor());
  asio::cancellation_signal stop;
  int woken = 0;
  bool aborted = false;
  asio::co_spawn(ctx, wait_once(n, woken),
                 asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                   try {
                     if (e) {
                       std::rethrow_exception(e);
                     }
                   } catch (const boost::system::system_error& x) {
                     aborted = x.code() == asio::error::operation_aborted;
                   }
                 }));
  spawn_waiter(ctx, n, woken);
  ctx.poll();
  BOOST_TEST(n.waiters() == 2u);
  stop.emit(asio::cancellation_type::terminal);
  ctx.poll();
  BOOST_TEST(aborted);
  BOOST_TEST(woken == 0);
  BOOST_TEST(n.waiters() == 1u);
  n.notify_all();
  ctx.poll();
  BOOST_TEST(woken == 1);
}

BOOST_AUTO_TEST_SUITE_END()
