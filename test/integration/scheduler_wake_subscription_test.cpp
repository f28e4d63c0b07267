// A wake-up subscription the server refuses (an ACL user without rights on the shard
// channels: NOPERM) is not silently dropped: redis_store::watch_wakes() fails with
// subscription_refused, and the dispatcher logs it and subscribes again with backoff while
// the tasks keep running (found by polling).
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <sstream>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using boost::system::error_code;

namespace {

// The server has the user "watcher" with every key and command but no channel.
corvo::test::redis_server_options refusing_server() {
  return {.acl_user = corvo::test::redis_acl_user{"watcher", "pw", "~* resetchannels +@all"}};
}

// The same server as the default user (full rights): the store's commands.
std::string admin_url(const corvo::test::redis_server& server) {
  return "redis://127.0.0.1:" + std::to_string(server.port());
}

struct ignore_wake {
  void operator()(unsigned) const {}
};

asio::awaitable<void> watch_for_a_while(redis_store& store, error_code& ended_with) {
  try {
    co_await corvo::with_timeout(store.watch_wakes(ignore_wake{}), 3s);
  } catch (const boost::system::system_error& e) {
    ended_with = e.code();
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(refused_wake_subscription_fails_watch_wakes) {
  corvo::test::redis_server server(refusing_server());
  asio::io_context ctx;
  redis::client commands(ctx.get_executor(), redis::client_config::from_url(admin_url(server)));
  asio::co_spawn(ctx, commands.run(), [](std::exception_ptr) {});
  redis_store store(commands, redis::client_config::from_url(server.url()),
                    {.name_space = "wake", .shards = 2});
  error_code ended_with;
  corvo::test::run(ctx, watch_for_a_while(store, ended_with), [&] { commands.cancel(); });
  BOOST_TEST(ended_with == error_code(redis::error::subscription_refused), ended_with.message());
}

namespace {

struct counter {
  int* runs;
  asio::awaitable<void> operator()(const claimed_task&) const {
    ++*runs;
    co_return;
  }
};

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

// Runs the dispatcher until the log shows two refused subscriptions and a task has run.
asio::awaitable<void> dispatch_while_refused(redis_store& store, dispatcher& d,
                                             const std::ostringstream& log, const int& runs) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal stop;
  bool stopped = false;
  asio::co_spawn(
      ex, run_dispatcher(d),
      asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { stopped = true; }));
  task t;
  t.id = "one";
  t.type = "count";
  t.due = now();
  co_await store.schedule(t);
  const auto refusals = [&log] {
    const std::string text = log.str();
    int n = 0;
    for (auto at = text.find("wake-up subscription ended"); at != std::string::npos;
         at = text.find("wake-up subscription ended", at + 1)) {
      ++n;
    }
    return n;
  };
  for (int i = 0; i < 1000 && (refusals() < 2 || runs < 1); ++i) {
    co_await corvo::sleep_for(10ms);
  }
  stop.emit(asio::cancellation_type::terminal);
  for (int i = 0; i < 1000 && !stopped; ++i) {
    co_await corvo::sleep_for(10ms);
  }
  BOOST_TEST(refusals() >= 2);
}

}  // namespace

BOOST_AUTO_TEST_CASE(dispatcher_logs_a_refused_wake_subscription_and_retries) {
  corvo::test::redis_server server(refusing_server());
  std::ostringstream log;
  corvo::log::init({.min_severity = corvo::log::severity::warning, .stream = &log});
  asio::io_context ctx;
  redis::client commands(ctx.get_executor(), redis::client_config::from_url(admin_url(server)));
  asio::co_spawn(ctx, commands.run(), [](std::exception_ptr) {});
  redis_store store(commands, redis::client_config::from_url(server.url()),
                    {.name_space = "wake", .shards = 2});
  handler_registry handlers;
  int runs = 0;
  handlers.on_task("count", counter{&runs});
  direct_sink sink(handlers);
  dispatcher_options options;
  options.max_sleep = 100ms;
  options.store_retry = {50ms, 200ms};
  dispatcher d(store, sink, options);
  corvo::test::run(ctx, dispatch_while_refused(store, d, log, runs), [&] { commands.cancel(); });
  corvo::log::init({});
  BOOST_TEST(runs == 1);
  BOOST_TEST(log.str().find("NOPERM") != std::string::npos, log.str());
}
