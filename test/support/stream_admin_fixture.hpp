#pragma once
// A redis::client on its own io_context for the stream admin tests: `run(op)` runs one
// coroutine (taking the client) to completion with the client's run() beside it.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <corvo/redis/client.hpp>
#include <functional>

#include "support/run_coroutine.hpp"

namespace corvo::test {

class client_runner {
 public:
  explicit client_runner(redis::client_config cfg) : config_(std::move(cfg)) {}

  /// Runs `op(client)` on a fresh client (connected on first use) and returns its value.
  template <class T>
  T run(std::function<boost::asio::awaitable<T>(redis::client&)> op) {
    boost::asio::io_context ctx;
    redis::client client(ctx.get_executor(), config_);
    boost::asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
    return corvo::test::run(ctx, op(client), [&] { client.cancel(); });
  }

 private:
  redis::client_config config_;
};

}  // namespace corvo::test
