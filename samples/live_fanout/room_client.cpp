#include "room_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <sstream>
#include <stdexcept>

namespace live_fanout {

namespace beast = boost::beast;
namespace json = boost::json;

std::string make_payload(const std::string& room, std::uint64_t seq, std::size_t padding) {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  std::string text =
      room + ' ' + std::to_string(seq) + ' ' +
      std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  if (padding > 0) {
    text += ' ';
    text.append(padding, 'x');
  }
  return text;
}

std::optional<parsed_payload> parse_payload(const std::string& text) {
  std::istringstream in(text);
  parsed_payload p;
  std::int64_t sent_ns = 0;
  if (!(in >> p.room >> p.seq >> sent_ns)) {
    return std::nullopt;
  }
  p.sent = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(sent_ns));
  return p;
}

room_client::room_client(asio::any_io_executor ex, std::string host, std::uint16_t port,
                         std::string room, int receive_buffer)
    : ws_(ex),
      host_(std::move(host)),
      port_(port),
      room_(std::move(room)),
      receive_buffer_(receive_buffer) {}

asio::awaitable<void> room_client::join() {
  const asio::ip::tcp::endpoint server(asio::ip::make_address(host_), port_);
  auto& socket = beast::get_lowest_layer(ws_).socket();
  socket.open(server.protocol());
  if (receive_buffer_ > 0) {
    socket.set_option(asio::socket_base::receive_buffer_size(receive_buffer_));
  }
  co_await socket.async_connect(server, asio::use_awaitable);
  socket.set_option(asio::ip::tcp::no_delay(true));
  const std::string host = host_ + ':' + std::to_string(port_);
  const std::string target = "/rooms/" + room_;
  co_await ws_.async_handshake(host, target, asio::use_awaitable);
  beast::flat_buffer buffer;
  co_await ws_.async_read(buffer, asio::use_awaitable);
  const std::string first = beast::buffers_to_string(buffer.data());
  const std::string expected = json::serialize(json::object{{"joined", room_}});
  if (first != expected) {
    throw std::runtime_error("room_client: expected " + expected + ", got " + first);
  }
}

asio::awaitable<void> room_client::listen() {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws_.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      // The server closed, or close() closed the socket (operation_aborted too): the end.
      // Only a cancellation of this coroutine is an error for the caller.
      ended_ = true;
      auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
      co_return;
    }
    const auto received = std::chrono::steady_clock::now();
    const auto parsed = parse_payload(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
    if (!parsed || parsed->room != room_) {
      ++foreign_;
      continue;
    }
    seqs_.push_back(parsed->seq);
    latencies_.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(received - parsed->sent));
  }
}

void room_client::close() {
  boost::system::error_code ignored;
  beast::get_lowest_layer(ws_).socket().close(ignored);
}

}  // namespace live_fanout
