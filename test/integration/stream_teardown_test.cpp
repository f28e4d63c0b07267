// A stream consumer destroyed while its run() is still active (the owner of the object went
// away first, e.g. a test body left by a failed assertion): the destruction stops that run
// as a cancellation would (the handlers in flight drain, what finished is acknowledged), the
// run ends in the background, and nothing touches freed memory (ASan). Before the fix, the
// destructor freed the consumer's state (its handler task_group, timers, connections) while
// the run's coroutines were still suspended on it: heap-use-after-free.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <memory>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/stream_fixture.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

// How a run ended, and what its handlers did. Shared with the run's completion handler and
// the handlers, so it outlives the test's scope and the consumer object.
struct run_end {
  asio::cancellation_signal signal;  // never emitted: only the destruction stops the run
  bool done = false;
  std::exception_ptr ended;
  int handled = 0;
  bool hold = false;  // handlers wait while set
  int holding = 0;    // handlers waiting now
};

stream::consumer_options options(std::string key) {
  stream::consumer_options o;
  o.group = "g";
  o.streams = {std::move(key)};
  o.consumer = "c1";
  o.block = 1s;  // a read is always in flight: the reader issues the next at once
  o.drain_timeout = 5s;
  return o;
}

stream::consumer::handler counting(std::shared_ptr<run_end> end) {
  return [end](const stream::entry&) -> asio::awaitable<void> {
    while (end->hold) {
      ++end->holding;
      co_await corvo::sleep_for(5ms);
      --end->holding;
    }
    ++end->handled;
  };
}

std::shared_ptr<run_end> start(asio::io_context& ctx, stream::consumer& c,
                               std::shared_ptr<run_end> end) {
  asio::co_spawn(ctx, c.run(counting(end)),
                 asio::bind_cancellation_slot(end->signal.slot(), [end](std::exception_ptr e) {
                   end->done = true;
                   end->ended = e;
                 }));
  return end;
}

asio::awaitable<void> append(redis::client& client, std::string key, int count) {
  stream::producer producer(client);
  for (int i = 0; i < count; ++i) {
    std::vector<std::string> fields{"n", std::to_string(i)};
    co_await producer.append_fields(key, fields);
  }
}

struct outcome {
  std::shared_ptr<run_end> end = std::make_shared<run_end>();
  std::size_t pending = 99;
};

// 3 entries handled, then the consumer is destroyed while its blocking read is pending (and,
// with `in_flight`, while a 4th entry's handler runs; released after the destruction).
asio::awaitable<void> destroy_while_running(redis::client& client, asio::io_context& ctx,
                                            std::string key, bool in_flight, outcome& out) {
  co_await append(client, key, 3);
  {
    auto c = std::make_unique<stream::consumer>(client, options(key));
    start(ctx, *c, out.end);
    BOOST_TEST_REQUIRE(co_await eventually([&] { return out.end->handled == 3; }, 20s));
    if (in_flight) {
      out.end->hold = true;
      co_await append(client, key, 1);
      BOOST_TEST_REQUIRE(co_await eventually([&] { return out.end->holding == 1; }, 20s));
    } else {
      co_await corvo::sleep_for(50ms);  // the next XREADGROUP is sent and blocks
    }
    c.reset();  // destroyed while run() is active
  }
  out.end->hold = false;
  BOOST_TEST_REQUIRE(co_await eventually([&] { return out.end->done; }, 20s));
  out.pending = (co_await corvo::test::pending_of(client, key, "g")).size();
}

void run_case(const std::string& key, bool in_flight, outcome& out) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  corvo::test::run(ctx, destroy_while_running(client, ctx, key, in_flight, out),
                   [&] { client.cancel(); });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stream_teardown)

BOOST_AUTO_TEST_CASE(a_consumer_destroyed_while_reading_stops_its_run) {
  outcome out;
  run_case("events", false, out);
  BOOST_TEST(out.end->done);
  BOOST_TEST(corvo::is_operation_aborted(out.end->ended));  // ended by the stop, as a cancel
  BOOST_TEST(out.end->handled == 3);
  BOOST_TEST(out.pending == 0u);  // every handled entry was acknowledged
}

BOOST_AUTO_TEST_CASE(a_consumer_destroyed_with_a_handler_in_flight_drains_it) {
  outcome out;
  run_case("orders", true, out);
  BOOST_TEST(out.end->done);
  BOOST_TEST(corvo::is_operation_aborted(out.end->ended));
  BOOST_TEST(out.end->handled == 4);  // the handler in flight finished during the drain
  BOOST_TEST(out.pending == 0u);      // and its entry was acknowledged
}

// run() called (co_spawned), then the consumer destroyed before the run began: the run
// ends at once with operation_aborted, touching nothing freed.
BOOST_AUTO_TEST_CASE(a_consumer_destroyed_before_its_run_began_ends_that_run) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  auto end = std::make_shared<run_end>();
  {
    stream::consumer c(client, options("late"));
    start(ctx, c, end);
  }  // destroyed before the io_context ran anything
  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        BOOST_TEST_REQUIRE(co_await eventually([&] { return end->done; }, 20s));
      }(),
      [&] { client.cancel(); });
  BOOST_TEST(end->done);
  BOOST_TEST(corvo::is_operation_aborted(end->ended));
  BOOST_TEST(end->handled == 0);
}

BOOST_AUTO_TEST_SUITE_END()
