#pragma once
// Shared by the multi-process stream tests: loading a stream, the workers' arguments.

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/producer.hpp>
#include <string>
#include <vector>

#include "support/redis_server.hpp"

namespace corvo::test {

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;

// Appends `n` typed events, 1,000 XADDs per pipelined request.
inline asio::awaitable<std::vector<std::string>> load(redis::client& c, const std::string& key,
                                                      std::size_t n) {
  stream::producer out(c);
  std::vector<std::string> ids;
  for (std::size_t first = 0; first < n; first += 1000) {
    redis::request req;
    const std::size_t count = std::min<std::size_t>(1000, n - first);
    for (std::size_t i = first; i < first + count; ++i) {
      const auto fields = stream::producer::typed_fields(
          "order.created", R"({"id":"o)" + std::to_string(i) + R"(","amount":1})", "", {});
      out.push_xadd(req, key, fields);
    }
    redis::generic_response resp;
    co_await c.exec(req, resp);
    for (const auto& node : resp) {
      if (node.depth == 0) {
        ids.push_back(node.value);
      }
    }
  }
  co_return ids;
}

inline std::vector<std::string> worker_arguments(const corvo::test::redis_server& server,
                                                 const std::string& key) {
  return {"--redis", server.url(), "--stream", key, "--group", "workers"};
}

}  // namespace corvo::test
