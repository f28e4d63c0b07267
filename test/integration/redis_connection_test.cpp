// The Redis connection against real redis-server processes: pipelining under concurrency,
// a killed and restarted server, authentication, TLS, pushes, cancellation, blocking
// commands, and a server that sends garbage.
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

#include <random>

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using corvo::test::redis_server;

namespace {

redis::config config_for(const redis_server& server) {
  auto cfg = redis::config::from_url(server.url());
  cfg.reconnect_backoff = {10ms, 100ms};
  if (server.tls()) {
    cfg.tls_ca_file = server.ca_cert_path().string();
  }
  return cfg;
}

// Runs `conn` in the background for the duration of a test body.
struct running_connection {
  running_connection(asio::io_context& ctx, redis::config cfg)
      : conn(ctx.get_executor(), std::move(cfg)) {
    asio::co_spawn(ctx, conn.run(), [this](std::exception_ptr e) {
      run_error = e;
      run_done = true;
    });
  }
  ~running_connection() { conn.cancel(); }
  redis::connection conn;
  std::exception_ptr run_error;
  bool run_done = false;
};

asio::awaitable<void> wait_connected(redis::connection& conn) {
  for (int i = 0; i < 5000 && !conn.is_connected(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  BOOST_REQUIRE(conn.is_connected());
}

// One of 100 clients: 1,000 commands of mixed kinds; every reply must be its own.
asio::awaitable<void> mixed_client(redis::connection& conn, int id, int& mismatches) {
  std::mt19937 random(id);
  for (int j = 0; j < 250; ++j) {
    const std::string key = "k:" + std::to_string(id) + ":" + std::to_string(j);
    const std::string value = "v:" + std::to_string(id) + ":" + std::to_string(j * 7);
    redis::request req;
    req.push("SET", key, value);
    req.push("GET", key);
    req.push("INCRBY", "counter:" + std::to_string(id), j);
    req.push("ECHO", value);
    redis::response<std::string, std::string, long long, std::string> resp;
    if (random() % 4 == 0) {
      co_await corvo::sleep_for(std::chrono::microseconds(random() % 300));
    }
    co_await conn.exec(req, resp);
    const long long expected_counter = static_cast<long long>(j) * (j + 1) / 2;
    if (std::get<0>(resp).value() != "OK" || std::get<1>(resp).value() != value ||
        std::get<2>(resp).value() != expected_counter || std::get<3>(resp).value() != value) {
      ++mismatches;
    }
  }
}

asio::awaitable<void> hundred_clients(redis::connection& conn, int& mismatches) {
  co_await wait_connected(conn);
  corvo::task_group clients(co_await asio::this_coro::executor);
  for (int id = 0; id < 100; ++id) {
    co_await clients.spawn(mixed_client(conn, id, mismatches));
  }
  co_await clients.join();
  conn.cancel();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_connection)

BOOST_AUTO_TEST_CASE(hundred_coroutines_thousand_commands_each_get_their_own_replies) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  int mismatches = 0;
  corvo::test::run(ctx, hundred_clients(rc.conn, mismatches), [&] { rc.conn.cancel(); });
  BOOST_TEST(mismatches == 0);
  const auto& stats = rc.conn.stats();
  BOOST_TEST(stats.requests == 100u * 250u);
  BOOST_TEST(stats.replies == 100u * 1000u);
  // Automatic pipelining: far fewer socket writes than requests.
  BOOST_TEST(stats.writes < stats.requests / 2);
  BOOST_TEST(server.cli("GET", "k:42:17") == "v:42:119");
}

asio::awaitable<void> types_and_errors(redis::connection& conn) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("DEL", "list", "hash");
  req.push("RPUSH", "list", "a", "b", "c");
  req.push("LRANGE", "list", 0, -1);
  req.push("HSET", "hash", "f1", "1", "f2", "2");
  req.push("HGETALL", "hash");
  req.push("GET", "no-such-key");
  req.push("INCR", "list");  // WRONGTYPE: a server error in its own slot
  req.push("PING");
  redis::response<redis::ignore_t, long long, std::vector<std::string>, long long,
                  std::map<std::string, std::string>, std::optional<std::string>, long long,
                  std::string>
      resp;
  co_await conn.exec(req, resp);
  BOOST_TEST(std::get<1>(resp).value() == 3);
  BOOST_TEST((std::get<2>(resp).value() == std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST(std::get<4>(resp).value().at("f2") == "2");
  BOOST_TEST(!std::get<5>(resp).value().has_value());
  BOOST_REQUIRE(!std::get<6>(resp).has_value());
  BOOST_TEST(std::get<6>(resp).error().code == boost::system::error_code(redis::error::server_error));
  BOOST_TEST(std::get<6>(resp).error().message.starts_with("WRONGTYPE"));
  BOOST_TEST(std::get<7>(resp).value() == "PONG");

  // A response with fewer slots than replies is refused before anything is sent.
  redis::request two;
  two.push("PING");
  two.push("PING");
  redis::response<std::string> one;
  BOOST_CHECK_EXCEPTION(co_await conn.exec(two, one), boost::system::system_error,
                        [](const auto& e) { return e.code() == redis::error::response_too_small; });
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(typed_replies_and_server_errors_per_slot) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  corvo::test::run(ctx, types_and_errors(rc.conn), [&] { rc.conn.cancel(); });
}

struct outage_result {
  int ok_before = 0;
  int failed = 0;
  int ok_after = 0;
  std::vector<boost::system::error_code> errors;
};

asio::awaitable<void> writer_loop(redis::connection& conn, bool& stop, int& ok, outage_result& r) {
  while (!stop) {
    redis::request req;
    req.push("INCR", "counter");
    redis::response<long long> resp;
    auto [ec, n] = co_await conn.async_exec(req, resp, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      ++r.failed;
      r.errors.push_back(ec);
      co_await corvo::sleep_for(1ms);
    } else {
      ++ok;
    }
  }
}

asio::awaitable<void> kill_and_restart(redis::connection& conn, redis_server& server,
                                       outage_result& r) {
  co_await wait_connected(conn);
  auto ex = co_await asio::this_coro::executor;
  bool stop = false;
  corvo::task_group loops(ex);
  int ok_phase1 = 0;
  for (int i = 0; i < 4; ++i) {
    co_await loops.spawn(writer_loop(conn, stop, ok_phase1, r));
  }
  co_await corvo::sleep_for(100ms);
  server.kill();  // SIGKILL mid-stream
  co_await corvo::sleep_for(200ms);
  BOOST_TEST(!conn.is_connected());
  r.ok_before = ok_phase1;
  server.restart();
  co_await wait_connected(conn);
  int ok_phase2 = 0;
  stop = true;
  co_await loops.join();
  stop = false;
  for (int i = 0; i < 4; ++i) {
    co_await loops.spawn(writer_loop(conn, stop, ok_phase2, r));
  }
  co_await corvo::sleep_for(100ms);
  stop = true;
  co_await loops.join();
  r.ok_after = ok_phase2;
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(killed_server_fails_in_flight_requests_and_the_connection_comes_back) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  outage_result r;
  corvo::test::run(ctx, kill_and_restart(rc.conn, server, r), [&] { rc.conn.cancel(); });
  BOOST_TEST(r.ok_before > 0);
  BOOST_TEST(r.ok_after > 0);
  BOOST_TEST(r.failed > 0);  // requests written before the kill failed, none hung
  for (auto ec : r.errors) {
    BOOST_TEST((ec == boost::system::error_code(redis::error::connection_lost) || ec == boost::system::error_code(redis::error::not_connected)),
               ec.message());
  }
  BOOST_TEST(rc.conn.stats().connects >= 2u);
}

asio::awaitable<void> expect_auth_failure(redis::connection& conn, boost::system::error_code& got) {
  redis::request req;
  req.push("PING");
  auto [ec, n] = co_await conn.async_exec(req, redis::ignore, asio::as_tuple(asio::use_awaitable));
  got = ec;
}

BOOST_AUTO_TEST_CASE(wrong_password_is_a_clear_authentication_error) {
  redis_server server({.password = "s3cret"});
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.password = "wrong";
  running_connection rc(ctx, cfg);
  boost::system::error_code exec_error;
  corvo::test::run(ctx, expect_auth_failure(rc.conn, exec_error));
  ctx.restart();
  ctx.run();
  BOOST_TEST(exec_error == boost::system::error_code(redis::error::auth_failed));
  BOOST_REQUIRE(rc.run_done);
  BOOST_CHECK_EXCEPTION(std::rethrow_exception(rc.run_error), boost::system::system_error,
                        [](const auto& e) {
                          return e.code() == redis::error::auth_failed &&
                                 std::string(e.what()).find("WRONGPASS") != std::string::npos;
                        });
}

asio::awaitable<void> ping_and_whoami(redis::connection& conn, std::string& user) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("ACL", "WHOAMI");
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  user = std::get<0>(resp).value();
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(password_and_acl_user_authenticate) {
  {
    redis_server server({.password = "s3cret"});
    asio::io_context ctx;
    running_connection rc(ctx, config_for(server));
    std::string user;
    corvo::test::run(ctx, ping_and_whoami(rc.conn, user), [&] { rc.conn.cancel(); });
    BOOST_TEST(user == "default");
  }
  {
    redis_server server({.acl_user = corvo::test::redis_acl_user{"alice", "w0nder-land"}});
    asio::io_context ctx;
    auto cfg = config_for(server);
    cfg.username = "alice";
    cfg.password = "w0nder-land";
    running_connection rc(ctx, cfg);
    std::string user;
    corvo::test::run(ctx, ping_and_whoami(rc.conn, user), [&] { rc.conn.cancel(); });
    BOOST_TEST(user == "alice");
  }
}

asio::awaitable<void> set_get(redis::connection& conn, std::string& value) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("SET", "tls-key", "over tls");
  req.push("GET", "tls-key");
  redis::response<redis::ignore_t, std::string> resp;
  co_await conn.exec(req, resp);
  value = std::get<1>(resp).value();
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(tls_connection_works_and_verifies_the_server) {
  redis_server server({.tls = true});
  {
    asio::io_context ctx;
    running_connection rc(ctx, config_for(server));
    BOOST_TEST(rc.conn.get_config().use_tls);
    std::string value;
    corvo::test::run(ctx, set_get(rc.conn, value), [&] { rc.conn.cancel(); });
    BOOST_TEST(value == "over tls");
  }
  {
    // Without the CA the server certificate does not verify: no connection is made.
    asio::io_context ctx;
    auto cfg = config_for(server);
    cfg.tls_ca_file.clear();
    running_connection rc(ctx, cfg);
    asio::steady_timer limit(ctx, 300ms);
    limit.async_wait([&](auto) { rc.conn.cancel(); });
    ctx.run();
    BOOST_TEST(rc.conn.stats().connects == 0u);
    BOOST_TEST(rc.conn.stats().connect_failures >= 1u);
  }
}

asio::awaitable<std::vector<std::string>> next_message(redis::connection& conn) {
  for (;;) {
    auto push = co_await corvo::with_timeout(conn.receive(), 10s);
    std::vector<std::string> fields;
    for (std::size_t i = 1; i < push.size(); ++i) {
      fields.push_back(push[i].value);
    }
    if (!fields.empty() && fields[0] == "message") {
      co_return fields;
    }
  }
}

asio::awaitable<void> pubsub_across_restart(redis::connection& subscriber,
                                            redis::connection& publisher, redis_server& server,
                                            std::vector<std::vector<std::string>>& received) {
  co_await wait_connected(subscriber);
  co_await wait_connected(publisher);
  redis::request sub;
  sub.push("SUBSCRIBE", "news");
  co_await subscriber.exec(sub);
  for (int round = 0; round < 2; ++round) {
    // Publish until the subscriber is (re)subscribed and receives.
    redis::request pub;
    pub.push("PUBLISH", "news", "round " + std::to_string(round));
    redis::response<long long> receivers;
    for (int i = 0; i < 500; ++i) {
      co_await publisher.exec(pub, receivers);
      if (std::get<0>(receivers).value() > 0) {
        break;
      }
      co_await corvo::sleep_for(10ms);
    }
    received.push_back(co_await next_message(subscriber));
    if (round == 0) {
      server.kill();
      server.restart();
      co_await corvo::sleep_for(50ms);
      co_await wait_connected(publisher);
      co_await wait_connected(subscriber);
    }
  }
  subscriber.cancel();
  publisher.cancel();
}

BOOST_AUTO_TEST_CASE(pushes_arrive_and_subscriptions_survive_a_restart) {
  redis_server server;
  asio::io_context ctx;
  auto cfg = config_for(server);
  running_connection subscriber(ctx, cfg);
  running_connection publisher(ctx, cfg);
  std::vector<std::vector<std::string>> received;
  corvo::test::run(ctx, pubsub_across_restart(subscriber.conn, publisher.conn, server, received),
                   [&] {
                     subscriber.conn.cancel();
                     publisher.conn.cancel();
                   });
  BOOST_REQUIRE(received.size() == 2u);
  BOOST_TEST((received[0] == std::vector<std::string>{"message", "news", "round 0"}));
  BOOST_TEST((received[1] == std::vector<std::string>{"message", "news", "round 1"}));
}

asio::awaitable<void> get_value(redis::connection& conn, std::string key, std::string& out) {
  redis::request req;
  req.push("GET", key);
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  out = std::get<0>(resp).value();
}

asio::awaitable<void> cancel_one_of_three(redis::connection& conn, redis::connection& admin,
                                          std::string (&values)[3], bool& b_aborted) {
  co_await wait_connected(conn);
  co_await wait_connected(admin);
  redis::request setup;
  setup.push("MSET", "a", "1", "b", "2", "c", "3");
  co_await conn.exec(setup);
  // Hold every client's commands for a while so the three GETs are written and waiting.
  redis::request pause;
  pause.push("CLIENT", "PAUSE", 300, "ALL");
  co_await admin.exec(pause);

  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex, {.on_failure = corvo::failure_policy::collect_errors});
  asio::cancellation_signal cancel_b;
  co_await group.spawn(get_value(conn, "a", values[0]));
  asio::co_spawn(ex, get_value(conn, "b", values[1]),
                 asio::bind_cancellation_slot(cancel_b.slot(), [&](std::exception_ptr e) {
                   try {
                     if (e) std::rethrow_exception(e);
                   } catch (const boost::system::system_error& ex) {
                     b_aborted = ex.code() == asio::error::operation_aborted;
                   }
                 }));
  co_await group.spawn(get_value(conn, "c", values[2]));
  co_await corvo::sleep_for(50ms);
  cancel_b.emit(asio::cancellation_type::terminal);
  co_await group.join();
  // The connection is still in step: a new request gets its own reply.
  std::string after;
  co_await get_value(conn, "a", after);
  BOOST_TEST(after == "1");
  conn.cancel();
  admin.cancel();
}

BOOST_AUTO_TEST_CASE(cancelling_a_written_request_leaves_the_others_correct) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  running_connection admin(ctx, config_for(server));
  std::string values[3];
  bool b_aborted = false;
  corvo::test::run(ctx, cancel_one_of_three(rc.conn, admin.conn, values, b_aborted), [&] {
    rc.conn.cancel();
    admin.conn.cancel();
  });
  BOOST_TEST(b_aborted);
  BOOST_TEST(values[0] == "1");
  BOOST_TEST(values[1].empty());
  BOOST_TEST(values[2] == "3");
}

asio::awaitable<void> blocking_rules(redis::connection& shared, redis::connection& dedicated,
                                     boost::system::error_code& shared_error,
                                     std::optional<std::string>& popped) {
  co_await wait_connected(shared);
  co_await wait_connected(dedicated);
  redis::request blpop;
  blpop.push("BLPOP", "jobs", "0.05");
  auto [ec, n] = co_await shared.async_exec(blpop, redis::ignore,
                                            asio::as_tuple(asio::use_awaitable));
  shared_error = ec;
  redis::request push;
  push.push("RPUSH", "jobs", "job-1");
  co_await shared.exec(push);
  redis::request blmove;
  blmove.push("BLMOVE", "jobs", "processing", "LEFT", "RIGHT", 1);
  redis::response<std::optional<std::string>> moved;
  co_await dedicated.exec(blmove, moved);
  popped = std::get<0>(moved).value();
  shared.cancel();
  dedicated.cancel();
}

BOOST_AUTO_TEST_CASE(blocking_commands_need_a_dedicated_connection) {
  redis_server server;
  asio::io_context ctx;
  running_connection shared(ctx, config_for(server));
  auto cfg = config_for(server);
  cfg.role = redis::connection_role::dedicated;
  running_connection dedicated(ctx, cfg);
  boost::system::error_code shared_error;
  std::optional<std::string> popped;
  corvo::test::run(ctx, blocking_rules(shared.conn, dedicated.conn, shared_error, popped), [&] {
    shared.conn.cancel();
    dedicated.conn.cancel();
  });
  BOOST_TEST(shared_error == boost::system::error_code(redis::error::blocking_on_shared_connection));
  BOOST_TEST(popped.value_or("") == "job-1");
}

// A "server" that completes the handshake, then answers the next command with garbage.
asio::awaitable<void> garbage_server(asio::ip::tcp::acceptor& acceptor, int& connections) {
  for (;;) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    ++connections;
    std::string in;
    co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n", asio::use_awaitable);
    co_await asio::async_write(socket, asio::buffer(std::string("%1\r\n+server\r\n+fake\r\n")),
                               asio::use_awaitable);
    in.clear();
    boost::system::error_code ec;
    co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n",
                                    asio::redirect_error(asio::use_awaitable, ec));
    co_await asio::async_write(socket, asio::buffer(std::string("?what\r\n")),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_await corvo::sleep_for(50ms);
  }
}

asio::awaitable<void> ask_garbage(redis::connection& conn, boost::system::error_code& got) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("GET", "x");
  redis::response<std::string> resp;
  auto [ec, n] = co_await conn.async_exec(req, resp, asio::as_tuple(asio::use_awaitable));
  got = ec;
  co_await corvo::sleep_for(100ms);  // let it reconnect at least once
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(malformed_reply_fails_the_request_and_reconnects) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  int connections = 0;
  asio::co_spawn(ctx, garbage_server(acceptor, connections), asio::detached);
  redis::config cfg;
  cfg.port = std::to_string(acceptor.local_endpoint().port());
  cfg.reconnect_backoff = {5ms, 20ms};
  running_connection rc(ctx, cfg);
  boost::system::error_code got;
  asio::co_spawn(ctx, ask_garbage(rc.conn, got), [&](std::exception_ptr) { acceptor.close(); });
  ctx.run();
  BOOST_TEST(got == boost::system::error_code(redis::error::connection_lost));
  BOOST_TEST(connections >= 2);  // the protocol error closed the connection; it came back
}

asio::awaitable<void> not_connected_fails_fast(redis::connection& conn,
                                               boost::system::error_code& got) {
  redis::request req(redis::request::config{.fail_if_not_connected = true});
  req.push("PING");
  auto [ec, n] = co_await conn.async_exec(req, redis::ignore, asio::as_tuple(asio::use_awaitable));
  got = ec;
  conn.cancel();
}

BOOST_AUTO_TEST_CASE(fail_if_not_connected_and_closed_connection) {
  asio::io_context ctx;
  redis::config cfg;
  cfg.port = "1";  // nothing listens there
  cfg.reconnect_backoff = {5ms, 20ms};
  running_connection rc(ctx, cfg);
  boost::system::error_code got;
  corvo::test::run(ctx, not_connected_fails_fast(rc.conn, got), [&] { rc.conn.cancel(); });
  ctx.restart();
  ctx.run();
  BOOST_TEST(got == boost::system::error_code(redis::error::not_connected));
  // After cancel(), requests fail at once instead of waiting.
  redis::request req;
  req.push("PING");
  boost::system::error_code after;
  rc.conn.async_exec(req, redis::ignore, [&](boost::system::error_code ec, std::size_t) { after = ec; });
  ctx.restart();
  ctx.run();
  BOOST_TEST(after == boost::system::error_code(redis::error::connection_closed));
}

asio::awaitable<void> transaction(redis::connection& conn,
                                  std::tuple<long long, long long, std::string>& exec_result,
                                  std::string& queued) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("MULTI");
  req.push("INCRBY", "tx-counter", 5);
  req.push("INCRBY", "tx-counter", 6);
  req.push("SET", "tx-key", "done");
  req.push("EXEC");
  redis::response<redis::ignore_t, std::string, std::string, std::string,
                  std::tuple<long long, long long, std::string>>
      resp;
  co_await conn.exec(req, resp);
  queued = std::get<1>(resp).value();
  exec_result = std::get<4>(resp).value();
}

BOOST_AUTO_TEST_CASE(multi_exec_in_one_request) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  std::tuple<long long, long long, std::string> exec_result;
  std::string queued;
  corvo::test::run(ctx, transaction(rc.conn, exec_result, queued), [&] { rc.conn.cancel(); });
  BOOST_TEST(queued == "QUEUED");
  BOOST_TEST(std::get<0>(exec_result) == 5);
  BOOST_TEST(std::get<1>(exec_result) == 11);
  BOOST_TEST(std::get<2>(exec_result) == "OK");
}

asio::awaitable<void> pause_server(redis::connection& conn, redis::connection& admin,
                                   std::string& after) {
  co_await wait_connected(conn);
  co_await wait_connected(admin);
  redis::request pause;
  pause.push("CLIENT", "PAUSE", 800, "ALL");
  co_await admin.exec(pause);
  // The idle connection's PING goes unanswered: it is closed and re-established.
  for (int i = 0; i < 2000 && conn.stats().health_check_failures == 0; ++i) {
    co_await corvo::sleep_for(5ms);
  }
  // Wait for the new connection, not just "connected": right after the failed check the
  // old one may not have been torn down yet, and a request written to it would be lost.
  for (int i = 0; i < 2000 && conn.stats().connects < 2; ++i) {
    co_await corvo::sleep_for(5ms);
  }
  co_await wait_connected(conn);
  co_await get_value(conn, "health", after);
}

BOOST_AUTO_TEST_CASE(unanswered_health_check_reconnects) {
  redis_server server;
  server.cli("SET", "health", "fine");
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.health_check_interval = 100ms;
  running_connection rc(ctx, cfg);
  running_connection admin(ctx, config_for(server));
  std::string after;
  corvo::test::run(ctx, pause_server(rc.conn, admin.conn, after), [&] {
    rc.conn.cancel();
    admin.conn.cancel();
  });
  BOOST_TEST(rc.conn.stats().health_check_failures >= 1u);
  BOOST_TEST(rc.conn.stats().connects >= 2u);
  BOOST_TEST(after == "fine");
}

struct resend_outcome {
  boost::system::error_code idempotent_error, plain_error;
  std::optional<std::string> idempotent_value;
};

asio::awaitable<void> exec_get(redis::connection& conn, const redis::request& req,
                               boost::system::error_code& ec, std::optional<std::string>& value) {
  redis::response<std::optional<std::string>> resp;
  auto [e, n] = co_await conn.async_exec(req, resp, asio::as_tuple(asio::use_awaitable));
  ec = e;
  if (!e) {
    value = std::get<0>(resp).value();
  }
}

asio::awaitable<void> kill_with_written_requests(redis::connection& conn, redis::connection& admin,
                                                 redis_server& server, resend_outcome& out) {
  co_await wait_connected(conn);
  co_await wait_connected(admin);
  redis::request pause;
  pause.push("CLIENT", "PAUSE", 5000, "ALL");
  co_await admin.exec(pause);
  auto ex = co_await asio::this_coro::executor;
  redis::request idempotent_get(redis::request::config{.idempotent = true});
  idempotent_get.push("GET", "durable");
  redis::request plain_get;
  plain_get.push("GET", "durable");
  std::optional<std::string> ignored;
  corvo::task_group group(ex, {.on_failure = corvo::failure_policy::collect_errors});
  co_await group.spawn(exec_get(conn, idempotent_get, out.idempotent_error, out.idempotent_value));
  co_await group.spawn(exec_get(conn, plain_get, out.plain_error, ignored));
  co_await corvo::sleep_for(100ms);  // both written, both waiting on the paused server
  server.kill();
  server.restart();
  server.cli("SET", "durable", "after restart");
  co_await group.join();
}

BOOST_AUTO_TEST_CASE(idempotent_requests_are_resent_after_a_loss_others_fail) {
  redis_server server;
  asio::io_context ctx;
  running_connection rc(ctx, config_for(server));
  running_connection admin(ctx, config_for(server));
  resend_outcome out;
  corvo::test::run(ctx, kill_with_written_requests(rc.conn, admin.conn, server, out), [&] {
    rc.conn.cancel();
    admin.conn.cancel();
  });
  BOOST_TEST(!out.idempotent_error, out.idempotent_error.message());
  BOOST_TEST(out.idempotent_value.value_or("") == "after restart");
  BOOST_TEST(out.plain_error == boost::system::error_code(redis::error::connection_lost));
}

asio::awaitable<void> name_and_database(redis::connection& conn, std::string& name) {
  co_await wait_connected(conn);
  redis::request req;
  req.push("CLIENT", "GETNAME");
  req.push("SET", "where", "db 2");
  redis::response<std::string, redis::ignore_t> resp;
  co_await conn.exec(req, resp);
  name = std::get<0>(resp).value();
}

BOOST_AUTO_TEST_CASE(handshake_sets_the_name_and_selects_the_database) {
  redis_server server;
  asio::io_context ctx;
  auto cfg = config_for(server);
  cfg.database = 2;
  cfg.client_name = "corvo-test";
  running_connection rc(ctx, cfg);
  std::string name;
  corvo::test::run(ctx, name_and_database(rc.conn, name), [&] { rc.conn.cancel(); });
  BOOST_TEST(name == "corvo-test");
  BOOST_TEST(server.cli("-n", "2", "GET", "where") == "db 2");
  BOOST_TEST(server.cli("GET", "where").empty());
}

BOOST_AUTO_TEST_SUITE_END()
