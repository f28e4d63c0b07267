#include "http_server.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>

namespace access_events {

namespace beast = boost::beast;
using asio::ip::tcp;

http_server::http_server(asio::any_io_executor executor, const std::string& host,
                         unsigned short port, route_fn route, observer_fn served)
    : acceptor_(executor, tcp::endpoint(asio::ip::make_address(host), port)),
      route_(std::move(route)),
      served_(std::move(served)) {}

unsigned short http_server::port() const {
  return acceptor_.local_endpoint().port();
}

asio::awaitable<void> http_server::run() {
  auto executor = co_await asio::this_coro::executor;
  corvo::task_group_options options;
  options.on_failure = corvo::failure_policy::collect_errors;
  corvo::task_group connections(executor, options);
  std::exception_ptr stopped;
  try {
    for (;;) {
      auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
      socket.set_option(tcp::no_delay(true));
      co_await connections.spawn(serve(std::move(socket)));
    }
  } catch (...) {
    stopped = std::current_exception();
  }
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  connections.cancel();
  try {
    co_await connections.join();
  } catch (...) {
    // the connections' own ends (cancelled reads) are not news
  }
  std::rethrow_exception(stopped);
}

asio::awaitable<void> http_server::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  try {
    for (;;) {
      http_request request;
      stream.expires_after(std::chrono::seconds(60));  // an idle keep-alive connection ends
      co_await http::async_read(stream, buffer, request, asio::use_awaitable);
      http_response response = co_await route_(request);
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      co_await http::async_write(stream, response, asio::use_awaitable);
      served_(request, response);
      if (!response.keep_alive()) {
        break;
      }
    }
  } catch (const boost::system::system_error& e) {
    // A client closing its connection is the normal end; cancellation ends it too.
    if (e.code() != http::error::end_of_stream && e.code() != asio::error::operation_aborted &&
        e.code() != asio::error::connection_reset && e.code() != beast::error::timeout) {
      CORVO_LOG(debug, "access_events") << "connection ended: " << e.what();
    }
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

http_response json_response(const http_request& request, http::status status, std::string body) {
  http_response response(status, request.version());
  response.set(http::field::content_type, "application/json");
  response.body() = std::move(body);
  return response;
}

}  // namespace access_events
