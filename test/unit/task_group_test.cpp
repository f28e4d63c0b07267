#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <stdexcept>

#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using corvo::task_group;

namespace {

bool is_aborted(const boost::system::system_error& e) {
  return e.code() == asio::error::operation_aborted;
}

struct gauge {
  int current = 0;
  int highest = 0;
  int finished = 0;
};

asio::awaitable<void> tracked_work(gauge& g, int yields) {
  ++g.current;
  g.highest = std::max(g.highest, g.current);
  for (int i = 0; i < yields; ++i) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
  co_await corvo::sleep_for(std::chrono::microseconds(200 * (yields % 3)));
  --g.current;
  ++g.finished;
}

asio::awaitable<void> spawn_many(task_group& group, gauge& g, int count) {
  for (int i = 0; i < count; ++i) {
    BOOST_TEST(co_await group.spawn(tracked_work(g, i % 5)));
    BOOST_TEST(group.in_flight() <= 4u);
  }
  co_await group.join();
}

// Waits "forever"; records whether it saw the cancellation.
asio::awaitable<void> wait_forever(int& cancelled_count) {
  try {
    co_await corvo::sleep_for(1h);
  } catch (const boost::system::system_error& e) {
    if (is_aborted(e)) {
      ++cancelled_count;
    }
    throw;
  }
}

// Like wait_forever, but needs an asynchronous clean-up after the cancellation.
asio::awaitable<void> wait_then_clean_up(int& cleaned_up) {
  bool cancelled = false;
  try {
    co_await corvo::sleep_for(1h);
  } catch (const boost::system::system_error&) {
    cancelled = true;
  }
  if (cancelled) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await corvo::sleep_for(5ms);
    ++cleaned_up;
  }
}

asio::awaitable<void> fail_at_once() {
  throw std::runtime_error("first");
  co_return;  // makes this a coroutine: the exception surfaces in the child, not at the call
}

asio::awaitable<void> fail_after_yield(std::uint64_t& failed_at, const std::uint64_t& turn) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  failed_at = turn;
  throw std::runtime_error("boom");
}

asio::awaitable<void> wait_forever_at(std::uint64_t& observed_at, const std::uint64_t& turn) {
  try {
    co_await corvo::sleep_for(1h);
  } catch (const boost::system::system_error&) {
    observed_at = turn;
    throw;
  }
}

asio::awaitable<void> spawn_three_waiters_and_a_failure(task_group& group,
                                                        std::uint64_t (&observed)[3],
                                                        std::uint64_t& failed_at,
                                                        const std::uint64_t& turn) {
  for (auto& o : observed) {
    co_await group.spawn(wait_forever_at(o, turn));
  }
  co_await group.spawn(fail_after_yield(failed_at, turn));
  co_await group.join();
}

// Spawns 5 children that wait until cancelled and 5 that clean up after a cancellation, then
// joins them: join(), or join_for() with a bound far beyond the test.
asio::awaitable<void> spawn_waiters_and_join(task_group& group, int& cancelled, int& cleaned_up,
                                             bool bounded = false) {
  for (int i = 0; i < 5; ++i) {
    co_await group.spawn(wait_forever(cancelled));
    co_await group.spawn(wait_then_clean_up(cleaned_up));
  }
  if (bounded) {
    co_await group.join_for(1h);
  } else {
    co_await group.join();
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(task_group_suite)

BOOST_AUTO_TEST_CASE(observed_maximum_in_flight_equals_the_limit) {
  asio::io_context ctx;
  task_group group(ctx.get_executor(), {.max_in_flight = 4});
  gauge g;
  corvo::test::run(ctx, spawn_many(group, g, 200));
  BOOST_TEST(g.highest == 4);
  BOOST_TEST(g.finished == 200);
  BOOST_TEST(group.in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(failing_child_cancels_siblings_within_one_loop_turn) {
  asio::io_context ctx;
  task_group group(ctx.get_executor());
  std::uint64_t turn = 0;  // handlers run so far, counted by the driving loop below
  std::uint64_t failed_at = 0;
  std::uint64_t observed[3] = {0, 0, 0};
  std::exception_ptr join_failure;
  bool joined = false;

  asio::co_spawn(ctx, spawn_three_waiters_and_a_failure(group, observed, failed_at, turn),
                 [&](std::exception_ptr e) {
                   join_failure = e;
                   joined = true;
                 });
  while (ctx.run_one() > 0) {
    ++turn;
  }
  BOOST_REQUIRE(joined);
  BOOST_REQUIRE(failed_at > 0);
  // The failure is reported by one handler (the child's completion), which emits the
  // cancellation; each sibling resumes in the next handler that runs.
  for (auto o : observed) {
    BOOST_TEST(o > failed_at);
    BOOST_TEST(o <= failed_at + 3);
  }
  // join() rethrows the failure itself; the siblings' cancellations are not failures.
  BOOST_REQUIRE(join_failure);
  BOOST_CHECK_EXCEPTION(
      std::rethrow_exception(join_failure), std::runtime_error,
      [](const std::runtime_error& e) { return std::string(e.what()) == "boom"; });
  BOOST_TEST(group.in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(collect_errors_lets_siblings_finish_and_reports_every_failure) {
  asio::io_context ctx;
  task_group group(ctx.get_executor(), {.on_failure = corvo::failure_policy::collect_errors});
  gauge g;
  auto scenario = [](task_group& group, gauge& g) -> asio::awaitable<void> {
    co_await group.spawn(fail_at_once());
    co_await group.spawn(tracked_work(g, 4));
    co_await group.spawn([]() -> asio::awaitable<void> {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
      throw std::logic_error("second");
    }());
    co_await group.join();
  };
  try {
    corvo::test::run(ctx, scenario(group, g));
    BOOST_FAIL("join() should have thrown task_group_error");
  } catch (const corvo::task_group_error& e) {
    BOOST_TEST(e.errors().size() == 2u);
  }
  BOOST_TEST(g.finished == 1);  // the sibling was not cancelled
}

BOOST_AUTO_TEST_CASE(cancelled_join_leaves_no_running_child) {
  asio::io_context ctx;
  task_group group(ctx.get_executor());
  int cancelled = 0;
  int cleaned_up = 0;
  asio::cancellation_signal stop;
  bool aborted = false;

  asio::co_spawn(ctx, spawn_waiters_and_join(group, cancelled, cleaned_up),
                 asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                   try {
                     if (e)
                       std::rethrow_exception(e);
                   } catch (const boost::system::system_error& ex) {
                     aborted = is_aborted(ex);
                   }
                   // Every child has finished by the time join() reports the cancellation.
                   BOOST_TEST(group.in_flight() == 0u);
                   BOOST_TEST(cleaned_up == 5);
                 }));
  asio::steady_timer later(ctx, 2ms);
  later.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
  ctx.run();
  BOOST_TEST(aborted);
  BOOST_TEST(cancelled == 5);
  BOOST_TEST(cleaned_up == 5);
  BOOST_TEST(group.in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(spawn_refuses_while_stopping_and_group_is_reusable_after_join) {
  asio::io_context ctx;
  task_group group(ctx.get_executor());
  int cancelled = 0;
  gauge g;
  auto scenario = [](task_group& group, int& cancelled, gauge& g) -> asio::awaitable<void> {
    BOOST_TEST(co_await group.spawn(wait_forever(cancelled)));
    group.cancel();
    BOOST_TEST(group.stopping());
    BOOST_TEST(!co_await group.spawn(tracked_work(g, 1)));
    co_await group.join();
    BOOST_TEST(!group.stopping());
    BOOST_TEST(co_await group.spawn(tracked_work(g, 1)));
    co_await group.join();
  };
  corvo::test::run(ctx, scenario(group, cancelled, g));
  BOOST_TEST(cancelled == 1);
  BOOST_TEST(g.finished == 1);  // only the child spawned after the reset ran
}

BOOST_AUTO_TEST_CASE(try_spawn_starts_only_with_a_free_slot_and_keeps_a_refused_child) {
  asio::io_context ctx;
  task_group group(ctx.get_executor(), {.max_in_flight = 1});
  int cancelled = 0;
  gauge g;
  auto scenario = [](task_group& group, int& cancelled, gauge& g) -> asio::awaitable<void> {
    asio::awaitable<void> first = wait_forever(cancelled);
    BOOST_TEST(group.try_spawn(first));
    BOOST_TEST(group.in_flight() == 1u);
    // Full: refused, and the child is still there to be started later.
    asio::awaitable<void> second = tracked_work(g, 1);
    BOOST_TEST(!group.try_spawn(second));
    BOOST_TEST(g.finished == 0);
    group.cancel();
    co_await group.join();
    BOOST_TEST(group.try_spawn(second));
    co_await group.join();
    // Stopping: refused as well.
    asio::awaitable<void> third = tracked_work(g, 1);
    BOOST_TEST(group.try_spawn(third));
    group.cancel();
    asio::awaitable<void> fourth = tracked_work(g, 1);
    BOOST_TEST(!group.try_spawn(fourth));
    co_await group.join();
  };
  corvo::test::run(ctx, scenario(group, cancelled, g));
  BOOST_TEST(cancelled == 1);
  BOOST_TEST(g.finished == 1);  // `second` ran; `third` was cancelled at its first yield
}

BOOST_AUTO_TEST_CASE(spawn_waiting_for_a_slot_is_cancellable) {
  asio::io_context ctx;
  task_group group(ctx.get_executor(), {.max_in_flight = 1});
  int cancelled = 0;
  gauge g;
  bool spawn_aborted = false;
  auto scenario = [](task_group& group, int& cancelled, gauge& g,
                     bool& spawn_aborted) -> asio::awaitable<void> {
    co_await group.spawn(wait_forever(cancelled));
    // The group is full: this spawn waits; the timeout cancels the wait.
    asio::cancellation_signal stop;
    asio::steady_timer timer(co_await asio::this_coro::executor, 2ms);
    timer.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
    try {
      co_await asio::co_spawn(co_await asio::this_coro::executor, group.spawn(tracked_work(g, 1)),
                              asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
    } catch (const boost::system::system_error& e) {
      spawn_aborted = is_aborted(e);
    }
    group.cancel();
    co_await group.join();
  };
  corvo::test::run(ctx, scenario(group, cancelled, g, spawn_aborted));
  BOOST_TEST(spawn_aborted);
  BOOST_TEST(g.finished == 0);
  BOOST_TEST(cancelled == 1);
}

BOOST_AUTO_TEST_CASE(join_for_times_out_without_touching_children) {
  asio::io_context ctx;
  task_group group(ctx.get_executor());
  int cleaned_up = 0;
  auto scenario = [](task_group& group, int& cleaned_up) -> asio::awaitable<void> {
    co_await group.spawn(wait_then_clean_up(cleaned_up));
    BOOST_TEST(!co_await group.join_for(2ms));
    BOOST_TEST(group.in_flight() == 1u);
    BOOST_TEST(!group.stopping());
    group.cancel();
    BOOST_TEST(co_await group.join_for(10s));
    BOOST_TEST(group.in_flight() == 0u);
  };
  corvo::test::run(ctx, scenario(group, cleaned_up));
  BOOST_TEST(cleaned_up == 1);
}

// join_for() under cancellation is join(): the children are cancelled and still waited for,
// then operation_aborted (not the two waits' multiple_exceptions with children left running).
BOOST_AUTO_TEST_CASE(cancelled_join_for_leaves_no_running_child) {
  asio::io_context ctx;
  task_group group(ctx.get_executor());
  int cancelled = 0;
  int cleaned_up = 0;
  asio::cancellation_signal stop;
  bool aborted = false;
  std::size_t running_at_end = 99;
  int cleaned_up_at_end = -1;

  asio::co_spawn(ctx, spawn_waiters_and_join(group, cancelled, cleaned_up, true),
                 asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                   try {
                     if (e)
                       std::rethrow_exception(e);
                   } catch (const boost::system::system_error& ex) {
                     aborted = is_aborted(ex);
                   } catch (...) {
                   }
                   running_at_end = group.in_flight();
                   cleaned_up_at_end = cleaned_up;
                   group.cancel();  // children left running (the bug) end, so run() returns
                 }));
  asio::steady_timer later(ctx, 2ms);
  later.async_wait([&](auto) { stop.emit(asio::cancellation_type::terminal); });
  ctx.run();
  BOOST_TEST(aborted);
  BOOST_TEST(running_at_end == 0u);  // every child finished before join_for reported
  BOOST_TEST(cleaned_up_at_end == 5);
  BOOST_TEST(cancelled == 5);
}

BOOST_AUTO_TEST_SUITE_END()
