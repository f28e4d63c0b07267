// The cluster client call docs/redis-cluster.md shows, as a complete program:
//   redis_cluster [CONFIG.json]   (default: a cluster seeded by redis://127.0.0.1:7000)
// It needs a live Redis Cluster, so the install.find_package test only compiles it (see
// test/install_consumer/check.cmake); docs_snippets_test checks that the doc quotes it
// verbatim.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/redis/client.hpp>
#include <exception>
#include <iostream>

namespace asio = boost::asio;
namespace redis = corvo::redis;

void log_errors(std::exception_ptr e) {
  try {
    if (e)
      std::rethrow_exception(e);
  } catch (const std::exception& error) {
    std::cerr << "redis client: " << error.what() << std::endl;
  }
}

asio::awaitable<void> app(const corvo::config& app_config) {
  const auto ex = co_await asio::this_coro::executor;
  // [cluster]
  auto cfg = redis::client_config::from(app_config);   // redis.url or redis.cluster.seeds
  redis::client redis(ex, cfg);
  co_spawn(ex, redis.run(), log_errors);

  redis::request req;
  req.push("HSET", "{order:7}", "state", "paid");
  req.push("EXPIRE", "{order:7}", 3600);
  co_await redis.exec(req);                             // one slot: one node, one pipeline
  // [/cluster]
  std::cout << "order 7 stored" << std::endl;
  redis.cancel();
}

int main(int argc, char** argv) {
  const auto app_config =
      argc > 1 ? corvo::config::from_file(argv[1])
               : corvo::config::from_string(R"({"redis": {"cluster": {"seeds": ["redis://127.0.0.1:7000"]}}})");
  corvo::runtime rt;
  return corvo::exit_code(rt.run(app(app_config)));
}
