// A queue consumer destroyed while its run() is still active (the owner of the object went
// away first, e.g. a test body left by a failed assertion): the destruction stops that run
// as a cancellation would, the run ends in the background by the stop, and nothing touches
// freed memory (ASan). Before the fix, the destructor freed the consumer's cancellation
// signals before its blocking connection, whose pending BLMOVE then cleared a slot of a freed
// signal (heap-use-after-free at connection.cpp complete()), and the run's coroutines would
// have resumed on the freed consumer.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/work_queue.hpp>
#include <memory>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace queue = corvo::queue;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

// How a run ended. Shared with its completion handler, so it outlives the test's scope
// (the run may end after the queue object and the scope that started it are gone).
struct run_end {
  asio::cancellation_signal signal;  // never emitted: only the destruction stops the run
  bool done = false;
  std::exception_ptr ended;
};

template <class Queue>
std::shared_ptr<run_end> start(asio::io_context& ctx, Queue& q) {
  auto end = std::make_shared<run_end>();
  asio::co_spawn(ctx, q.run(),
                 asio::bind_cancellation_slot(end->signal.slot(), [end](std::exception_ptr e) {
                   end->done = true;
                   end->ended = e;
                 }));
  return end;
}

queue::queue_options options(std::string name) {
  queue::queue_options o;
  o.name = std::move(name);
  o.consumer = "c1";
  o.block_timeout = 1s;  // a pop is always in flight: the loop issues the next at once
  o.drain_timeout = 2s;
  o.heartbeat_ttl = 3s;
  return o;
}

asio::awaitable<void> handled(const queue::item&) {
  co_return;
}

asio::awaitable<long long> llen(redis::client& client, std::string key) {
  redis::request req;
  req.push("LLEN", key);
  redis::response<long long> resp;
  co_await client.exec(req, resp);
  co_return std::get<0>(resp).value();
}

template <class Queue>
asio::awaitable<void> destroy_while_running(redis::client& client, asio::io_context& ctx,
                                            std::string name, std::shared_ptr<run_end>& end,
                                            std::uint64_t& succeeded) {
  queue::producer jobs(client, name);
  for (int i = 0; i < 3; ++i) {
    co_await jobs.push_raw("job-" + std::to_string(i));
  }
  {
    auto q = std::make_unique<Queue>(client, options(name), handled);
    end = start(ctx, *q);
    BOOST_TEST_REQUIRE(co_await eventually([&] { return q->stats().succeeded == 3; }, 20s));
    co_await corvo::sleep_for(50ms);  // the next BLMOVE is sent and blocks on the empty queue
    succeeded = q->stats().succeeded;
    q.reset();  // destroyed while run() is active
  }
  BOOST_TEST_REQUIRE(co_await eventually([&] { return end->done; }, 20s));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(queue_teardown)

BOOST_AUTO_TEST_CASE(a_reliable_queue_destroyed_while_running_stops_its_run) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::shared_ptr<run_end> end;
  std::uint64_t succeeded = 0;
  corvo::test::run(
      ctx, destroy_while_running<queue::reliable_queue>(client, ctx, "jobs", end, succeeded),
      [&] { client.cancel(); });
  BOOST_TEST(succeeded == 3u);
  BOOST_TEST_REQUIRE(end != nullptr);
  BOOST_TEST(end->done);
  BOOST_TEST(corvo::is_operation_aborted(end->ended));  // ended by the stop, as a cancel
}

BOOST_AUTO_TEST_CASE(a_reliable_queue_destroyed_while_running_signs_off_and_acks) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::shared_ptr<run_end> end;
  std::uint64_t succeeded = 0;
  queue::queue_info info;
  long long processing = -1;
  auto body = [&]() -> asio::awaitable<void> {
    co_await destroy_while_running<queue::reliable_queue>(client, ctx, "orders", end, succeeded);
    info = co_await queue::inspect(client, "orders");
    processing = co_await llen(client, queue::queue_keys("orders").processing("c1"));
  };
  corvo::test::run(ctx, body(), [&] { client.cancel(); });
  BOOST_TEST(succeeded == 3u);
  BOOST_TEST(corvo::is_operation_aborted(end->ended));
  BOOST_TEST(info.depth == 0u);
  BOOST_TEST(info.dead == 0u);
  BOOST_TEST(info.consumers.empty());  // the stopped run signed the consumer off
  BOOST_TEST(processing == 0);         // every handled item was acknowledged
}

BOOST_AUTO_TEST_CASE(a_work_queue_destroyed_while_running_stops_its_run) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::shared_ptr<run_end> end;
  std::uint64_t succeeded = 0;
  corvo::test::run(ctx,
                   destroy_while_running<queue::work_queue>(client, ctx, "plain", end, succeeded),
                   [&] { client.cancel(); });
  BOOST_TEST(succeeded == 3u);
  BOOST_TEST(corvo::is_operation_aborted(end->ended));
}

// run() called (co_spawned), then the queue destroyed before the run began: the run ends
// at once with operation_aborted, touching nothing freed.
BOOST_AUTO_TEST_CASE(a_reliable_queue_destroyed_before_its_run_began_ends_that_run) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::shared_ptr<run_end> end;
  {
    queue::reliable_queue q(client, options("late"), handled);
    end = start(ctx, q);
  }  // destroyed before the io_context ran anything
  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        BOOST_TEST_REQUIRE(co_await eventually([&] { return end->done; }, 20s));
      }(),
      [&] { client.cancel(); });
  BOOST_TEST(end->done);
  BOOST_TEST(corvo::is_operation_aborted(end->ended));
}

BOOST_AUTO_TEST_SUITE_END()
