// redis::client::reset_connections on a hung server (SIGSTOP: the socket stays open, so the
// connections look up): the requests written to it fail at once with
// error::connection_reset instead of at their reply deadline, on the client and on the
// dedicated clients made from it (a blocked BLPOP included); from the reset on the client
// is not connected (a fail_if_not_connected request fails at once, an unmarked one waits);
// after SIGCONT it reconnects and the waiting request completes. A reset of a client that
// is not connected does nothing, and a destroyed dedicated client has left the family. A
// reset by address drops only the connection to that address.
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <csignal>
#include <iostream>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using boost::system::error_code;
using corvo::test::redis_server;
using clock_type = std::chrono::steady_clock;

namespace {

redis::client_config config_for(const redis_server& server) {
  auto cfg = redis::client_config::from_url(server.url());
  cfg.server.reconnect_backoff = {10ms, 100ms};
  return cfg;  // request_timeout: the default 5 s
}

// What one exec ended with.
struct outcome {
  error_code ec;
  std::string value;
  clock_type::time_point ended{};
  bool done = false;
};

asio::awaitable<void> exec_one(redis::client& c, redis::request req, outcome& out) {
  redis::response<std::optional<std::string>> resp;
  try {
    co_await c.exec(req, resp);
    out.value = std::get<0>(resp).has_value() ? std::get<0>(resp).value().value_or("(nil)")
                                              : std::get<0>(resp).error().message;
  } catch (const boost::system::system_error& e) {
    out.ec = e.code();
  }
  out.ended = clock_type::now();
  out.done = true;
}

asio::awaitable<void> wait_for(const std::function<bool()>& condition) {
  for (int i = 0; i < 5000 && !condition(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  BOOST_REQUIRE(condition());
}

redis::request get(const std::string& key, bool fail_if_not_connected = false) {
  redis::request req(redis::request::config{.fail_if_not_connected = fail_if_not_connected});
  req.push("GET", key);
  return req;
}

redis::request blpop(const std::string& key) {
  redis::request req;
  req.push("BLPOP", key, "10");
  return req;
}

struct scenario {
  redis_server* server = nullptr;
  redis::client* shared = nullptr;
  outcome written_get, written_blpop, right_after, refused, waiting;
  clock_type::time_point reset_at{};
  bool connected_after_reset = true;
  std::uint64_t resets_after_second_call = 0;
};

asio::awaitable<void> reset_a_hung_server(scenario& s) {
  auto ex = co_await asio::this_coro::executor;
  auto worker = s.shared->dedicated();
  auto gone = s.shared->dedicated();  // destroyed before the reset: out of the family
  corvo::task_group group(ex);
  co_await group.spawn(worker->run());
  co_await wait_for([&] {
    return s.shared->standalone()->is_connected() && worker->standalone()->is_connected();
  });
  gone.reset();

  BOOST_REQUIRE(::kill(s.server->pid(), SIGSTOP) == 0);
  corvo::task_group requests(ex);
  co_await requests.spawn(exec_one(*s.shared, get("k"), s.written_get));
  co_await requests.spawn(exec_one(*worker, blpop("empty"), s.written_blpop));
  // Both written and waiting for the hung server.
  co_await wait_for([&] {
    return s.shared->standalone()->reply_wait() > 0ms && worker->standalone()->reply_wait() > 0ms;
  });
  co_await corvo::sleep_for(50ms);
  BOOST_TEST(!s.written_get.done);
  BOOST_TEST(!s.written_blpop.done);

  s.reset_at = clock_type::now();
  s.shared->reset_connections("test: server hung");
  s.connected_after_reset = s.shared->standalone()->is_connected();
  // Issued right after the reset: not written to the dropped connection, it waits for the
  // next one.
  co_await requests.spawn(exec_one(*s.shared, get("k"), s.right_after));
  co_await wait_for([&] { return s.written_get.done && s.written_blpop.done; });
  // Not connected while hung: a request that must not wait fails at once; another waits.
  co_await exec_one(*s.shared, get("k", true), s.refused);
  co_await requests.spawn(exec_one(*s.shared, get("k"), s.waiting));
  s.shared->reset_connections("test: again, not connected");
  s.resets_after_second_call =
      s.shared->standalone()->stats().resets + worker->standalone()->stats().resets;
  co_await corvo::sleep_for(100ms);
  BOOST_TEST(!s.waiting.done);
  BOOST_TEST(!s.right_after.done);

  BOOST_REQUIRE(::kill(s.server->pid(), SIGCONT) == 0);
  co_await requests.join();
  worker->cancel();
  co_await group.join();
}

struct by_address {
  redis_server* server = nullptr;
  redis::client* shared = nullptr;
  outcome written_get;
  std::uint64_t resets_after_other_address = 0;
  bool done_after_other_address = true;
};

// reset_connections_to drops only the connections to the address it names.
asio::awaitable<void> reset_by_address(by_address& s) {
  auto ex = co_await asio::this_coro::executor;
  co_await wait_for([&] { return s.shared->standalone()->is_connected(); });
  BOOST_REQUIRE(::kill(s.server->pid(), SIGSTOP) == 0);
  corvo::task_group requests(ex);
  co_await requests.spawn(exec_one(*s.shared, get("k"), s.written_get));
  co_await wait_for([&] { return s.shared->standalone()->reply_wait() > 0ms; });
  s.shared->reset_connections_to("127.0.0.1:1", "test: another server");
  co_await corvo::sleep_for(50ms);
  s.done_after_other_address = s.written_get.done;
  s.resets_after_other_address = s.shared->standalone()->stats().resets;
  s.shared->reset_connections_to(s.server->address(), "test: this server");
  co_await requests.join();
  BOOST_REQUIRE(::kill(s.server->pid(), SIGCONT) == 0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_client_reset)

BOOST_AUTO_TEST_CASE(a_reset_by_address_drops_only_that_servers_connection) {
  redis_server server;
  asio::io_context ctx;
  redis::client shared(ctx.get_executor(), config_for(server));
  asio::co_spawn(ctx, shared.run(), [](std::exception_ptr) {});
  by_address s;
  s.server = &server;
  s.shared = &shared;
  try {
    corvo::test::run(ctx, reset_by_address(s), [&] { shared.cancel(); });
  } catch (...) {
    ::kill(server.pid(), SIGCONT);
    throw;
  }
  BOOST_TEST(!s.done_after_other_address);
  BOOST_TEST(s.resets_after_other_address == 0u);
  BOOST_TEST(s.written_get.ec == error_code(redis::error::connection_reset),
             s.written_get.ec.message());
  BOOST_TEST(shared.standalone()->stats().resets == 1u);
}

BOOST_AUTO_TEST_CASE(a_reset_fails_what_a_hung_server_holds_and_the_client_recovers) {
  redis_server server;
  server.cli("SET", "k", "v");
  asio::io_context ctx;
  redis::client shared(ctx.get_executor(), config_for(server));
  asio::co_spawn(ctx, shared.run(), [](std::exception_ptr) {});
  scenario s;
  s.server = &server;
  s.shared = &shared;
  try {
    corvo::test::run(ctx, reset_a_hung_server(s), [&] { shared.cancel(); });
  } catch (...) {
    ::kill(server.pid(), SIGCONT);
    throw;
  }
  const auto ms = [&](clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - s.reset_at).count();
  };
  std::cout << "after the reset: GET failed in " << ms(s.written_get.ended) << " ms, BLPOP in "
            << ms(s.written_blpop.ended) << " ms (request_timeout 5000 ms)\n";
  BOOST_TEST(s.written_get.ec == error_code(redis::error::connection_reset),
             s.written_get.ec.message());
  BOOST_TEST(s.written_blpop.ec == error_code(redis::error::connection_reset),
             s.written_blpop.ec.message());
  BOOST_TEST(ms(s.written_get.ended) < 1000);
  BOOST_TEST(ms(s.written_blpop.ended) < 1000);
  BOOST_TEST(!s.connected_after_reset);
  BOOST_TEST(s.refused.ec == error_code(redis::error::not_connected), s.refused.ec.message());
  // One reset per connection (the second call found them not connected).
  BOOST_TEST(s.resets_after_second_call == 2u);
  BOOST_TEST(!s.waiting.ec, s.waiting.ec.message());
  BOOST_TEST(s.waiting.value == "v");
  BOOST_TEST(!s.right_after.ec, s.right_after.ec.message());
  BOOST_TEST(s.right_after.value == "v");
}

BOOST_AUTO_TEST_SUITE_END()
