// The Redis client README shows ("Redis client in one screen"), as a complete program:
//   redis_client [URL]   (default redis://127.0.0.1:6379)
// It needs a live Redis server, so the install.find_package test only compiles it (see
// test/install_consumer/check.cmake); docs_snippets_test checks that README quotes it
// verbatim.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <corvo/core/runtime.hpp>
#include <exception>
#include <iostream>
#include <map>
#include <string>

namespace asio = boost::asio;

// [client]
#include <corvo/redis/connection.hpp>
#include <corvo/redis/script.hpp>

namespace redis = corvo::redis;

asio::awaitable<void> example(redis::connection& conn) {
  redis::request req;                      // one or many commands, written together
  req.push("SET", "user:1", "ada");
  req.push("INCRBY", "visits", 3);
  req.push("HGETALL", "profile:1");
  redis::response<std::string, long long, std::map<std::string, std::string>> resp;
  co_await conn.exec(req, resp);           // throws system_error on connection failures
  long long visits = std::get<1>(resp).value();  // a server error is stored per reply
  std::cout << "visits: " << visits << std::endl;
}

// redis::connection conn(ex, redis::config::from_url("rediss://user:pw@host:6380/0?ca=ca.pem"));
// co_spawn(ex, conn.run(), on_error);     // connect, handshake, reconnect with backoff
// [/client]

void on_error(std::exception_ptr e) {
  try {
    if (e)
      std::rethrow_exception(e);
  } catch (const std::exception& error) {
    std::cerr << "redis connection: " << error.what() << std::endl;
  }
}

asio::awaitable<void> app(redis::connection& conn) {
  co_await example(conn);
  conn.cancel();  // ends run()
}

int main(int argc, char** argv) {
  corvo::runtime rt;
  const auto ex = rt.get_executor();
  redis::connection conn(ex, redis::config::from_url(argc > 1 ? argv[1] : "redis://127.0.0.1:6379"));
  asio::co_spawn(ex, conn.run(), on_error);
  return corvo::exit_code(rt.run(app(conn)));
}
