// The Redis connection when the server refuses or stops answering: a refused SUBSCRIBE
// (ACL NOPERM) fails alone and leaves the reply stream in step; a request that gets no
// reply within `config::request_timeout` fails with error::request_timeout and the
// connection is re-established (CLIENT PAUSE, SIGSTOP); blocking commands get their block
// time on top; `config::max_queued_requests` bounds what is queued.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/connection.hpp>
#include <csignal>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using boost::system::error_code;
using corvo::test::redis_server;
using clock_type = std::chrono::steady_clock;

namespace {

redis::config config_for(const redis_server& server) {
  auto cfg = redis::config::from_url(server.url());
  cfg.reconnect_backoff = {10ms, 100ms};
  return cfg;
}

struct running_connection {
  running_connection(asio::io_context& ctx, redis::config cfg)
      : conn(ctx.get_executor(), std::move(cfg)) {
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  }
  ~running_connection() { conn.cancel(); }
  redis::connection conn;
};

asio::awaitable<void> wait_connected(redis::connection& conn) {
  for (int i = 0; i < 5000 && !conn.is_connected(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  BOOST_REQUIRE(conn.is_connected());
}

// What one exec ended with.
struct outcome {
  error_code ec;
  std::optional<std::string> value;  // GET's value, when it got one
  std::string server_error;          // GET's error reply, when it got one
  clock_type::duration took{};
  bool done = false;
};

asio::awaitable<void> exec_subscribe(redis::connection& conn, std::string command,
                                     std::string channel, outcome& out) {
  redis::request req;
  req.push(command, channel);
  const auto start = clock_type::now();
  auto [ec, n] = co_await conn.async_exec(req, redis::ignore, asio::as_tuple(asio::use_awaitable));
  out.ec = ec;
  out.took = clock_type::now() - start;
  out.done = true;
}

asio::awaitable<void> exec_get(redis::connection& conn, std::string key, outcome& out) {
  redis::request req;
  req.push("GET", key);
  redis::response<std::optional<std::string>> resp;
  const auto start = clock_type::now();
  auto [ec, n] = co_await conn.async_exec(req, resp, asio::as_tuple(asio::use_awaitable));
  out.took = clock_type::now() - start;
  out.ec = ec;
  if (!ec) {
    if (std::get<0>(resp).has_value()) {
      out.value = std::get<0>(resp).value().value_or("(nil)");
    } else {
      out.server_error = std::get<0>(resp).error().message;
    }
  }
  out.done = true;
}

// ---- item 8: a refused subscription ------------------------------------------------------

asio::awaitable<void> refused_subscribe(redis::connection& conn, outcome (&out)[6]) {
  co_await wait_connected(conn);
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  // Spawned back to back: all of them go out in one write, as one pipeline.
  co_await group.spawn(exec_subscribe(conn, "SUBSCRIBE", "x", out[0]));
  co_await group.spawn(exec_get(conn, "k", out[1]));
  co_await group.spawn(exec_subscribe(conn, "PSUBSCRIBE", "x*", out[2]));
  co_await group.spawn(exec_subscribe(conn, "SUBSCRIBE", "allowed", out[3]));
  co_await group.spawn(exec_get(conn, "k2", out[4]));
  co_await group.join();
  // The stream is still in step afterwards.
  co_await exec_get(conn, "k", out[5]);
  conn.cancel();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_connection_deadline)

BOOST_AUTO_TEST_CASE(refused_subscribe_fails_alone_and_later_replies_stay_matched) {
  // An ACL user with every key and command but only the channel "allowed" (Redis 7:
  // `resetchannels` is the default; NOPERM for any other channel).
  redis_server server({.acl_user = corvo::test::redis_acl_user{"alice", "w0nder-land",
                                                               "~* resetchannels &allowed +@all"}});
  server.cli("SET", "k", "value-of-k");
  server.cli("SET", "k2", "value-of-k2");
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  outcome out[6];
  corvo::test::run(ctx, refused_subscribe(rc.conn, out), [&] { rc.conn.cancel(); });
  BOOST_TEST(out[0].ec == error_code(redis::error::subscription_refused), out[0].ec.message());
  BOOST_TEST(!out[1].ec);
  BOOST_TEST(out[1].value.value_or("<" + out[1].server_error + ">") == "value-of-k");
  BOOST_TEST(out[2].ec == error_code(redis::error::subscription_refused), out[2].ec.message());
  BOOST_TEST(!out[3].ec, out[3].ec.message());
  BOOST_TEST(out[4].value.value_or("<" + out[4].server_error + ">") == "value-of-k2");
  BOOST_TEST(out[5].value.value_or("<" + out[5].server_error + ">") == "value-of-k");
  BOOST_TEST(rc.conn.stats().subscriptions_refused == 2u);
}

// ---- item 9: request deadline ------------------------------------------------------------

namespace {

asio::awaitable<void> get_during_pause(redis::connection& conn, redis::connection& admin,
                                       outcome& during, outcome& after) {
  co_await wait_connected(conn);
  co_await wait_connected(admin);
  redis::request pause;
  // Redis 7.0 pauses CLIENT UNPAUSE itself under `PAUSE ... ALL`, so the pause cannot be
  // lifted from another connection: a pause long enough to cover the deadline five times.
  pause.push("CLIENT", "PAUSE", 1500, "ALL");
  co_await admin.exec(pause);
  co_await exec_get(conn, "k", during);
  // After the pause the connection is re-established and serves requests again.
  for (int i = 0; i < 100; ++i) {
    after = {};
    co_await exec_get(conn, "k", after);
    if (!after.ec) {
      break;
    }
    co_await corvo::sleep_for(50ms);
  }
  conn.cancel();
  admin.cancel();
}

}  // namespace

BOOST_AUTO_TEST_CASE(get_during_client_pause_times_out_and_the_connection_recovers) {
  redis_server server;
  server.cli("SET", "k", "v");
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.request_timeout = 300ms;
  running_connection rc(ctx, cfg);
  running_connection admin(ctx, config_for(server));
  outcome during, after;
  corvo::test::run(ctx, get_during_pause(rc.conn, admin.conn, during, after), [&] {
    rc.conn.cancel();
    admin.conn.cancel();
  });
  BOOST_TEST(during.ec == error_code(redis::error::request_timeout), during.ec.message());
  BOOST_TEST_MESSAGE("GET during the pause failed after "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(during.took).count()
                     << " ms");
  BOOST_TEST(during.took >= 300ms);
  BOOST_TEST(during.took < 2s);  // ~0.3 s; generous for a loaded machine
  BOOST_TEST(!after.ec, after.ec.message());
  BOOST_TEST(after.value.value_or("") == "v");
  BOOST_TEST(rc.conn.stats().request_timeouts == 1u);
  BOOST_TEST(rc.conn.stats().connects >= 2u);
}

namespace {

asio::awaitable<void> get_while_stopped(redis::connection& conn, redis_server& server,
                                        outcome& during, outcome& after) {
  co_await wait_connected(conn);
  BOOST_REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  co_await exec_get(conn, "k", during);
  BOOST_REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  for (int i = 0; i < 100; ++i) {
    after = {};
    co_await exec_get(conn, "k", after);
    if (!after.ec) {
      break;
    }
    co_await corvo::sleep_for(50ms);
  }
  conn.cancel();
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigstopped_server_is_detected_and_the_connection_recovers) {
  redis_server server;
  server.cli("SET", "k", "v");
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.request_timeout = 300ms;
  running_connection rc(ctx, cfg);
  outcome during, after;
  try {
    corvo::test::run(ctx, get_while_stopped(rc.conn, server, during, after),
                     [&] { rc.conn.cancel(); });
  } catch (...) {
    ::kill(server.pid(), SIGCONT);
    throw;
  }
  BOOST_TEST(during.ec == error_code(redis::error::request_timeout), during.ec.message());
  BOOST_TEST(during.took < 2s);
  BOOST_TEST(!after.ec, after.ec.message());
  BOOST_TEST(after.value.value_or("") == "v");
}

namespace {

asio::awaitable<void> blpop_longer_than_the_deadline(redis::connection& conn,
                                                     std::optional<std::string>& popped,
                                                     error_code& ec, clock_type::duration& took) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("BLPOP", "empty-list", "1.2");  // blocks 1.2 s, four times the deadline
  redis::response<std::optional<std::vector<std::string>>> resp;
  const auto start = clock_type::now();
  auto [e, n] = co_await conn.async_exec(req, resp, asio::as_tuple(asio::use_awaitable));
  took = clock_type::now() - start;
  ec = e;
  if (!e && std::get<0>(resp).has_value()) {
    popped = std::get<0>(resp).value() ? "list" : "(nil)";
  }
  conn.cancel();
}

}  // namespace

BOOST_AUTO_TEST_CASE(blocking_command_gets_its_block_time_on_top_of_the_deadline) {
  redis_server server;
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.request_timeout = 300ms;
  cfg.role = redis::connection_role::dedicated;
  running_connection rc(ctx, cfg);
  std::optional<std::string> popped;
  error_code ec;
  clock_type::duration took{};
  corvo::test::run(ctx, blpop_longer_than_the_deadline(rc.conn, popped, ec, took),
                   [&] { rc.conn.cancel(); });
  BOOST_TEST(!ec, ec.message());
  BOOST_TEST(popped.value_or("") == "(nil)");  // the BLPOP timed out on the server's side
  BOOST_TEST(took >= 1100ms);
  BOOST_TEST(rc.conn.stats().request_timeouts == 0u);
}

// ---- item 9: bounded queue ---------------------------------------------------------------

namespace {

asio::awaitable<void> incr(redis::connection& conn, error_code& ec) {
  redis::request req;
  req.push("INCR", "counter");
  auto [e, n] = co_await conn.async_exec(req, redis::ignore, asio::as_tuple(asio::use_awaitable));
  ec = e;
}

struct cancel_result {
  error_code ec;
  bool done = false;
};

asio::awaitable<void> flood_paused_server(redis::connection& conn, redis::connection& admin,
                                          std::size_t& max_queued_seen, error_code (&ecs)[10],
                                          cancel_result& cancelled, long long& counter) {
  co_await wait_connected(conn);
  co_await wait_connected(admin);
  redis::request pause;
  pause.push("CLIENT", "PAUSE", 700, "ALL");
  co_await admin.exec(pause);
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  for (auto& ec : ecs) {
    co_await group.spawn(incr(conn, ec));
  }
  // The eleventh waits for room too; cancel it while it waits: it is never sent.
  asio::cancellation_signal cancel;
  error_code cancelled_ec;
  asio::co_spawn(ex, incr(conn, cancelled_ec),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr) {
                   cancelled.ec = cancelled_ec;
                   cancelled.done = true;
                 }));
  for (int i = 0; i < 50; ++i) {
    max_queued_seen = std::max(max_queued_seen, conn.queued_requests());
    co_await corvo::sleep_for(5ms);
  }
  cancel.emit(asio::cancellation_type::terminal);
  co_await group.join();
  redis::request get;
  get.push("GET", "counter");
  redis::response<long long> resp;
  co_await admin.exec(get, resp);
  counter = std::get<0>(resp).value();
  conn.cancel();
  admin.cancel();
}

}  // namespace

BOOST_AUTO_TEST_CASE(requests_over_the_queue_bound_wait_for_room_and_can_be_cancelled) {
  redis_server server;
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.max_queued_requests = 4;
  running_connection rc(ctx, cfg);
  running_connection admin(ctx, config_for(server));
  std::size_t max_queued_seen = 0;
  error_code ecs[10];
  cancel_result cancelled;
  long long counter = -1;
  corvo::test::run(
      ctx, flood_paused_server(rc.conn, admin.conn, max_queued_seen, ecs, cancelled, counter), [&] {
        rc.conn.cancel();
        admin.conn.cancel();
      });
  for (const auto& ec : ecs) {
    BOOST_TEST(!ec, ec.message());
  }
  BOOST_TEST(max_queued_seen == 4u);
  BOOST_TEST(cancelled.done);
  BOOST_TEST(cancelled.ec == error_code(asio::error::operation_aborted));
  BOOST_TEST(counter == 10);  // the cancelled INCR never reached the server
  BOOST_TEST(rc.conn.stats().waits_for_room == 7u);
}

BOOST_AUTO_TEST_SUITE_END()
