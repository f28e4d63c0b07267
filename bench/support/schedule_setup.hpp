#pragma once
// Shared by the schedule-* benches: the task store named by `--provider`. "redis" starts a
// throwaway redis-server, a client on it (run on the bench's io_context) and a redis_store;
// "memory" is a memory_store with 16 shards.

#include <corvo/redis/client.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "support/redis_server.hpp"

#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace corvo::bench {

class schedule_setup {
 public:
  /// The store of `provider` ("redis" or "memory"), or nullptr after printing the accepted
  /// names on stderr. `options` configure the redis_store (unused by the memory store).
  static std::unique_ptr<schedule_setup> open(boost::asio::io_context& ctx,
                                              const std::string& provider,
                                              corvo::schedule::redis_store_options options) {
    if (provider != "redis" && provider != "memory") {
      std::cerr << "--provider must be redis or memory\n";
      return nullptr;
    }
    return std::unique_ptr<schedule_setup>(new schedule_setup(ctx, provider, std::move(options)));
  }

  corvo::schedule::store& store() { return *store_; }
  /// The redis store, client and server; null with the memory provider.
  corvo::schedule::redis_store* redis_store() { return redis_store_; }
  corvo::redis::client* client() { return client_.get(); }
  corvo::test::redis_server* server() { return server_ ? &*server_ : nullptr; }

  /// Completion handler for the bench's driver coroutine: stops the client (so ctx.run()
  /// returns) and rethrows the driver's failure.
  auto on_done() {
    return [this](std::exception_ptr e) {
      if (client_) {
        client_->cancel();
      }
      if (e) {
        std::rethrow_exception(e);
      }
    };
  }

 private:
  schedule_setup(boost::asio::io_context& ctx, const std::string& provider,
                 corvo::schedule::redis_store_options options) {
    if (provider == "redis") {
      server_.emplace();
      const auto config = corvo::redis::client_config::from_url(server_->url());
      client_ = std::make_unique<corvo::redis::client>(ctx.get_executor(), config);
      boost::asio::co_spawn(ctx, client_->run(), [](std::exception_ptr) {});
      auto store =
          std::make_unique<corvo::schedule::redis_store>(*client_, config, std::move(options));
      redis_store_ = store.get();
      store_ = std::move(store);
    } else {
      store_ = std::make_unique<corvo::schedule::memory_store>(ctx.get_executor(), 16);
    }
  }

  std::optional<corvo::test::redis_server> server_;
  std::unique_ptr<corvo::redis::client> client_;
  corvo::schedule::redis_store* redis_store_ = nullptr;
  std::unique_ptr<corvo::schedule::store> store_;
};

}  // namespace corvo::bench
