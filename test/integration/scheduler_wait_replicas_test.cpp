// scheduler.redis.wait_replicas: schedule(), cancel() and ack() return once N replicas have
// the write (WAIT in the same request as the script), and fail with a clear error after
// wait_timeout when fewer do, instead of claiming a durability they do not have.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <string>
#include <thread>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;

namespace {

task make_task(std::string id, time_point due) {
  task t;
  t.id = std::move(id);
  t.type = "email";
  t.payload = 1;
  t.due = due;
  return t;
}

// Polls `check` every 20 ms until it holds or `limit` passes (the replication handshake).
template <class Check>
bool eventually(Check check, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!check()) {
    if (std::chrono::steady_clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

struct replicated_writes {
  bool scheduled_on_replica = false;
  bool acked = false;
  bool cancelled_on_replica = false;
};

asio::awaitable<void> write_through_wait(redis_store& store, corvo::test::redis_server& replica,
                                         replicated_writes& out) {
  co_await store.schedule(make_task("order-1", now() - 1s));
  co_await store.schedule(make_task("order-2", now() + 1h));
  // WAIT returned: the replica has applied the write, so it reads it right away.
  const auto tasks_key = store.keys_of(store.shard_of("order-1"))[1];
  out.scheduled_on_replica = !replica.cli("HGET", tasks_key, "order-1").empty();
  const auto shard = store.shard_of("order-1");
  const auto claimed = co_await store.claim(shard, 10, 10s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 1u);
  std::vector<completion> done(1);
  done[0].id = claimed.tasks[0].work.id;
  done[0].token = claimed.tasks[0].token;
  out.acked = co_await store.ack(shard, std::move(done)) == 1u;
  BOOST_TEST(co_await store.cancel("order-2"));
  const auto other_key = store.keys_of(store.shard_of("order-2"))[1];
  out.cancelled_on_replica = replica.cli("HGET", other_key, "order-2").empty() &&
                             replica.cli("HGET", tasks_key, "order-1").empty();
}

asio::awaitable<std::string> schedule_without_replicas(redis_store& store) {
  try {
    co_await store.schedule(make_task("order-1", now() + 1h));
  } catch (const std::exception& e) {
    co_return e.what();
  }
  co_return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(writes_wait_for_the_replica) {
  corvo::test::redis_server master;
  corvo::test::redis_server replica({.tag = "redis-replica"});
  BOOST_TEST_REQUIRE(replica.cli("REPLICAOF", master.host(), std::to_string(master.port())) ==
                     "OK");
  BOOST_TEST_REQUIRE(eventually(
      [&] {
        return replica.cli("INFO", "replication").find("master_link_status:up") !=
               std::string::npos;
      },
      20s));

  asio::io_context ctx;
  const auto url = redis::client_config::from_url(master.url());
  redis::client conn(ctx.get_executor(), url);
  redis_store store(
      conn, url,
      {.name_space = "durable", .shards = 4, .wait_replicas = 1, .wait_timeout = 5000ms});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  replicated_writes out;
  corvo::test::run(ctx, write_through_wait(store, replica, out), [&] { conn.cancel(); });
  BOOST_TEST(out.scheduled_on_replica);
  BOOST_TEST(out.acked);
  BOOST_TEST(out.cancelled_on_replica);
}

BOOST_AUTO_TEST_CASE(without_a_replica_schedule_fails_after_the_timeout) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  redis_store store(
      conn, url, {.name_space = "durable", .shards = 4, .wait_replicas = 1, .wait_timeout = 300ms});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto started = std::chrono::steady_clock::now();
  const auto error =
      corvo::test::run(ctx, schedule_without_replicas(store), [&] { conn.cancel(); });
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST_MESSAGE("schedule failed with: " << error);
  BOOST_TEST(error.find("acknowledged by 0 of 1 replica(s) within 300 ms") != std::string::npos,
             error);
  BOOST_TEST(error.find("schedule") != std::string::npos, error);
  BOOST_TEST(took >= 300ms);
  BOOST_TEST(took < 5s);
}

BOOST_AUTO_TEST_CASE(wait_replicas_needs_a_positive_timeout) {
  asio::io_context ctx;
  const auto url = redis::client_config::from_url("redis://127.0.0.1:1");
  redis::client conn(ctx.get_executor(), url);
  BOOST_CHECK_THROW(redis_store(conn, url, {.wait_replicas = 1, .wait_timeout = 0ms}),
                    std::invalid_argument);
}
