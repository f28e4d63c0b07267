#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/ops/server.hpp>

namespace corvo::ops {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

asio::ip::tcp::endpoint parse_endpoint(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    throw std::invalid_argument("expected host:port, got \"" + std::string(text) + "\"");
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']') {
      throw std::invalid_argument("unbalanced [ in \"" + std::string(text) + "\"");
    }
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    throw std::invalid_argument("bad port in \"" + std::string(text) + "\"");
  }
  boost::system::error_code addr_ec;
  auto address = asio::ip::make_address(std::string(host), addr_ec);
  if (addr_ec) {
    throw std::invalid_argument("\"" + std::string(host) +
                                "\" is not a numeric IP address (write 127.0.0.1, not localhost)");
  }
  return {address, static_cast<unsigned short>(port)};
}

std::optional<server_options> server_options::from(const corvo::config& cfg) {
  auto section = cfg.section("ops");
  server_options o;
  auto listen = section.get_or<std::string>("listen", "");
  o.token = section.get_or<std::string>("token", "");
  o.max_request_bytes = section.get_or<std::size_t>("max_request_bytes", o.max_request_bytes);
  o.max_connections = section.get_or<std::size_t>("max_connections", o.max_connections);
  o.rate_limit = section.get_or<double>("rate_limit", o.rate_limit);
  o.rate_burst = section.get_or<double>("rate_burst", o.rate_burst);
  o.idle_timeout = section.get_or<std::chrono::milliseconds>("idle_timeout", o.idle_timeout);
  cfg.reject_unknown_keys("ops");
  if (listen.empty()) {
    return std::nullopt;
  }
  try {
    o.listen = parse_endpoint(listen);
  } catch (const std::invalid_argument& e) {
    throw config_error("ops.listen", std::string("config: key 'ops.listen': ") + e.what());
  }
  if (!o.listen.address().is_loopback() && o.token.empty()) {
    throw config_error("ops.listen", "config: key 'ops.listen' is not a loopback address (" +
                                         listen + "): set 'ops.token' to serve it");
  }
  if (o.max_connections == 0 || o.max_request_bytes == 0) {
    throw config_error("ops.max_connections",
                       "config: 'ops.max_connections' and 'ops.max_request_bytes' must be > 0");
  }
  return o;
}

access_policy policy_for(const server_options& options) {
  access_policy p;
  p.token = options.token;
  p.csrf_token = random_token();
  return p;
}

struct server::impl {
  impl(asio::any_io_executor ex, server_options o, router& r)
      : executor(ex),
        options(std::move(o)),
        routes(r),
        acceptor(ex),
        limiter(options.rate_limit, options.rate_burst) {}

  asio::any_io_executor executor;
  server_options options;
  router& routes;
  tcp::acceptor acceptor;
  rate_limiter limiter;
  std::size_t open_connections = 0;
};

namespace {

request placeholder_request() {
  request req;
  req.version(11);
  req.keep_alive(false);
  return req;
}

asio::awaitable<void> write_response(beast::tcp_stream& stream, response& res) {
  auto [ec, n] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
  if (ec) {
    throw boost::system::system_error(ec);
  }
}

asio::awaitable<void> serve_connection(std::shared_ptr<server::impl> self, tcp::socket socket) {
  ++self->open_connections;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  try {
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(8 * 1024);
      parser.body_limit(self->options.max_request_bytes);
      stream.expires_after(self->options.idle_timeout);
      auto [ec, n] =
          co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        std::optional<response> refusal;
        auto placeholder = placeholder_request();
        if (ec == http::error::body_limit) {
          refusal = error_response(placeholder, http::status::payload_too_large,
                                   "request body too large");
        } else if (ec == http::error::header_limit) {
          refusal = error_response(placeholder, http::status::request_header_fields_too_large,
                                   "request headers too large");
        } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal = error_response(placeholder, http::status::bad_request, "malformed request");
        }
        if (refusal) {
          stream.expires_after(std::chrono::seconds(5));
          co_await write_response(stream, *refusal);
        }
        break;
      }
      request req = parser.release();
      std::optional<response> res;
      if (!self->limiter.try_acquire()) {
        res = error_response(req, http::status::too_many_requests, "rate limit exceeded");
        res->set(http::field::retry_after, "1");
      } else {
        stream.expires_never();  // a handler may take a while (a Redis call)
        res = co_await self->routes.handle(std::move(req));
      }
      stream.expires_after(self->options.idle_timeout);
      co_await write_response(stream, *res);
      if (!res->keep_alive()) {
        break;
      }
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  } catch (const boost::system::system_error& e) {
    // The client went away, timed out, or the server is stopping: nothing to answer.
    if (e.code() != asio::error::operation_aborted) {
      CORVO_LOG(debug, "ops") << "connection ended: " << e.code().message();
    }
  } catch (const std::exception& e) {
    CORVO_LOG(error, "ops") << "connection failed: " << e.what();
  }
  --self->open_connections;
}

}  // namespace

server::server(asio::any_io_executor executor, server_options options, router& routes)
    : impl_(std::make_shared<impl>(executor, std::move(options), routes)) {
  if (!impl_->options.listen.address().is_loopback() && impl_->options.token.empty()) {
    throw std::invalid_argument("ops: a non-loopback address needs a token (ops.token)");
  }
}

server::~server() {
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

void server::open() {
  if (impl_->acceptor.is_open()) {
    return;
  }
  auto& a = impl_->acceptor;
  a.open(impl_->options.listen.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  a.bind(impl_->options.listen);
  a.listen();
  if (impl_->options.token.empty() && impl_->options.listen.address().is_loopback()) {
    std::string suffix = ":" + std::to_string(a.local_endpoint().port());
    impl_->routes.set_allowed_hosts({"127.0.0.1" + suffix, "localhost" + suffix, "[::1]" + suffix});
  }
}

asio::ip::tcp::endpoint server::local_endpoint() const {
  return impl_->acceptor.local_endpoint();
}

std::size_t server::connections() const noexcept {
  return impl_->open_connections;
}

asio::awaitable<void> server::run() {
  open();
  auto self = impl_;
  CORVO_LOG(info, "ops") << "ops endpoint listening on " << self->acceptor.local_endpoint();
  auto ex = co_await asio::this_coro::executor;
  task_group sessions(ex);
  std::exception_ptr ended;
  try {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted) {
        throw boost::system::system_error(ec);
      }
      if (ec) {
        CORVO_LOG(warning, "ops") << "accept failed: " << ec.message();
        continue;  // e.g. too many open files: the next accept may work
      }
      if (self->open_connections >= self->options.max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      co_await sessions.spawn(serve_connection(self, std::move(socket)));
    }
  } catch (...) {
    ended = std::current_exception();
  }
  boost::system::error_code ignored;
  self->acceptor.close(ignored);
  sessions.cancel();
  // After a cancellation, a co_await would throw at once and leave the connections running
  // past run(), with the router they use: clear the state to wait for them.
  co_await asio::this_coro::reset_cancellation_state();
  try {
    co_await sessions.join();  // waits for every connection even when cancelled
  } catch (...) {
  }
  std::rethrow_exception(ended);
}

}  // namespace corvo::ops
