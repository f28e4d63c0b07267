// Scripts run by SHA1, loaded transparently on NOSCRIPT (first use, SCRIPT FLUSH, restart).
#include <corvo/core/backoff.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/script.hpp>

#include <boost/test/unit_test.hpp>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;

namespace {

const redis::script add_and_get(R"lua(
  redis.call('INCRBY', KEYS[1], ARGV[1])
  return redis.call('GET', KEYS[1])
)lua");

const redis::script broken("return redis.call('NOSUCHCOMMAND')");

struct outcome {
  std::vector<std::string> values;
  redis::reply_error script_error;
};

asio::awaitable<void> use_scripts(redis::connection& conn, corvo::test::redis_server& server,
                                  outcome& out) {
  while (!conn.is_connected()) {
    co_await corvo::sleep_for(2ms);
  }
  // (Named vectors: GCC 12 rejects braced lists of strings as arguments in a coroutine,
  // "array used as initializer".)
  const std::vector<std::string> keys{"counter"};
  const std::vector<std::string> five{"5"}, two{"2"}, three{"3"}, none;
  redis::response<std::string> resp;
  co_await add_and_get.exec(conn, keys, five, resp);  // NOSCRIPT: loaded, then run
  out.values.push_back(std::get<0>(resp).value());
  co_await add_and_get.exec(conn, keys, two, resp);  // known by now
  out.values.push_back(std::get<0>(resp).value());
  server.cli("SCRIPT", "FLUSH");
  co_await add_and_get.exec(conn, keys, three, resp);  // flushed: loaded again
  out.values.push_back(std::get<0>(resp).value());

  redis::response<std::string> failed;
  co_await broken.exec(conn, none, none, failed);
  out.script_error = std::get<0>(failed).error();
}

}  // namespace

BOOST_AUTO_TEST_CASE(noscript_is_handled_transparently) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::connection conn(ctx.get_executor(), redis::config::from_url(server.url()));
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  outcome out;
  corvo::test::run(ctx, use_scripts(conn, server, out), [&] { conn.cancel(); });
  BOOST_TEST((out.values == std::vector<std::string>{"5", "7", "10"}));
  // The SHA1 we compute is the one Redis computes.
  BOOST_TEST(server.cli("SCRIPT", "LOAD", add_and_get.source()) == add_and_get.sha1());
  // A failing script is a server error in its slot, not an exception.
  BOOST_TEST(bool(out.script_error.code == redis::error::server_error));
  BOOST_TEST(out.script_error.message.find("Unknown Redis command") != std::string::npos);
}
