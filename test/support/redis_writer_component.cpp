#include "support/redis_writer_component.hpp"

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>

namespace corvo::test {

boost::asio::awaitable<void> redis_writer_component(redis::client& redis, health::dependency dep,
                                                    std::string key, std::string label,
                                                    std::chrono::milliseconds every) {
  for (;;) {
    redis::request req;
    req.push("INCR", key);
    try {
      co_await redis.exec(req);
    } catch (const boost::system::system_error& e) {
      if (e.code() != boost::asio::error::operation_aborted) {
        dep.report_failure(label + ": " + e.what());
      }
      throw;
    }
    co_await sleep_for(every);
  }
}

}  // namespace corvo::test
