#pragma once
// A small HTTP/1.1 server on Boost.Beast: keep-alive connections, one coroutine each, a
// route function that makes the response, and an observer (the access-log middleware)
// called after each response is written.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <string>

namespace access_events {

namespace asio = boost::asio;
namespace http = boost::beast::http;

using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;

class http_server {
 public:
  using route_fn = std::function<asio::awaitable<http_response>(const http_request&)>;
  using observer_fn = std::function<void(const http_request&, const http_response&)>;

  /// Binds and listens on `host:port` now (port 0: any free port, see port()).
  http_server(asio::any_io_executor executor, const std::string& host, unsigned short port,
              route_fn route, observer_fn served);

  unsigned short port() const;
  /// Accepts and serves until cancelled (terminal): then stops accepting, cancels the
  /// connections, waits for them and throws operation_aborted.
  asio::awaitable<void> run();

 private:
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);

  asio::ip::tcp::acceptor acceptor_;
  route_fn route_;
  observer_fn served_;
};

/// A JSON response with `status` and `body`.
http_response json_response(const http_request& request, http::status status, std::string body);

}  // namespace access_events
