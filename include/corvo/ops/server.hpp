#pragma once
// The ops HTTP endpoint (Boost.Beast, HTTP/1.1) on the application's io_context: it reads
// requests, applies the size and rate limits and hands them to a router (router.hpp), which
// holds the routes (/metrics, /health/*, the dashboard: see endpoints.hpp, dashboard.hpp).
//
//   auto options = ops::server_options::from(cfg);        // nullopt: `ops.listen` not set
//   if (options) {
//     ops::router routes(ops::policy_for(*options));
//     ops::add_metrics_route(routes, metrics);               // endpoints.hpp, dashboard.hpp
//     ops::server http(ex, *options, routes);
//     co_spawn(ex, http.run(), log_errors);
//   }
//
// Configuration (section `ops`; any other key below it is a config_error naming the nearest):
//   ops.listen             "host:port" ("127.0.0.1:9464", "[::1]:9464"); unset: no endpoint
//   ops.token              bearer token; required when `listen` is not a loopback address
//   ops.max_request_bytes  largest request body; larger: 413 and the connection closes (65536)
//   ops.max_connections    connections served at once; more are closed at once (64)
//   ops.rate_limit         requests per second over all connections; beyond: 429 (100)
//   ops.rate_burst         requests allowed at once above the rate (200)
//   ops.idle_timeout       a connection silent this long is closed (30s)
//
// Failure behaviour: a malformed request gets 400 (headers over 8 KiB: 431) and its
// connection is closed; an exception in a handler is a 500 for that request only; a client
// that stops reading is cut off by `idle_timeout`.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/ops/router.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace corvo::ops {

struct server_options {
  asio::ip::tcp::endpoint listen{asio::ip::make_address("127.0.0.1"), 9464};
  std::string token;
  std::size_t max_request_bytes = 64 * 1024;
  std::size_t max_connections = 64;
  double rate_limit = 100;
  double rate_burst = 200;
  std::chrono::milliseconds idle_timeout{30'000};

  /// Reads the `ops` section (see the file comment): nullopt when `ops.listen` is not set.
  /// Throws config_error for an unknown key, an address that does not parse, or a
  /// non-loopback address without `ops.token`.
  static std::optional<server_options> from(const corvo::config& cfg);
};

/// Parses "host:port" / "[v6]:port" (a numeric address); std::invalid_argument otherwise.
asio::ip::tcp::endpoint parse_endpoint(std::string_view text);

/// The access policy for a server with `options`: its token and a fresh CSRF token. (The
/// server adds the allowed Host names when it opens its socket.)
access_policy policy_for(const server_options& options);

class server {
 public:
  /// Throws std::invalid_argument when the address is not loopback and there is no token
  /// (the same rule as server_options::from, for options built in code).
  server(asio::any_io_executor executor, server_options options, router& routes);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds (port 0: a free port, see local_endpoint()) and opens the listening socket. run()
  /// calls it when it was not called. On a loopback address without a token, it restricts
  /// the router to the Host names that reach it (localhost, 127.0.0.1 and [::1] with the
  /// bound port), against DNS rebinding. Throws system_error when the bind fails.
  void open();
  /// The bound address (after open()).
  asio::ip::tcp::endpoint local_endpoint() const;

  /// Serves connections until cancelled (terminal): then closes the listening socket and
  /// every connection, waits for their coroutines, and throws operation_aborted.
  asio::awaitable<void> run();

  /// Connections open now.
  std::size_t connections() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::ops
