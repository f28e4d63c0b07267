#pragma once
// A WebSocket client of the fan-out server (Boost.Beast), and the message format the demo
// and the test publish: "ROOM SEQ SENT_NS [padding]" (SENT_NS: steady_clock nanoseconds at
// publish time, so a client in the same process measures the fan-out latency).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace live_fanout {

namespace asio = boost::asio;

/// The payload of message `seq` of `room`, `padding` bytes longer than needed.
std::string make_payload(const std::string& room, std::uint64_t seq, std::size_t padding = 0);

struct parsed_payload {
  std::string room;
  std::uint64_t seq = 0;
  std::chrono::steady_clock::time_point sent{};
};
/// Nothing when `text` is not a payload of make_payload().
std::optional<parsed_payload> parse_payload(const std::string& text);

class room_client {
 public:
  /// `receive_buffer` > 0 sets SO_RCVBUF before connecting (a small one makes a client
  /// that does not read fall behind after a few frames, as a slow device would).
  room_client(asio::any_io_executor ex, std::string host, std::uint16_t port, std::string room,
              int receive_buffer = 0);

  /// Connects, upgrades to a WebSocket on /rooms/ROOM and reads the `{"joined":ROOM}` frame:
  /// from then on every message the server receives for the room reaches this client.
  /// Throws system_error on a connection or protocol failure, std::runtime_error on an
  /// unexpected first frame.
  asio::awaitable<void> join();
  /// Reads frames until the connection ends (returns) or cancellation (terminal: throws).
  /// A frame of this room's payload format is recorded in seqs() and latencies(); any
  /// other frame counts in foreign().
  asio::awaitable<void> listen();
  /// Closes the socket (a non-reading client's way out).
  void close();

  const std::string& room() const noexcept { return room_; }
  const std::vector<std::uint64_t>& seqs() const noexcept { return seqs_; }
  const std::vector<std::chrono::nanoseconds>& latencies() const noexcept { return latencies_; }
  std::size_t foreign() const noexcept { return foreign_; }
  /// True once listen() saw the connection end.
  bool ended() const noexcept { return ended_; }

 private:
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  std::string host_;
  std::uint16_t port_;
  std::string room_;
  int receive_buffer_;
  std::vector<std::uint64_t> seqs_;
  std::vector<std::chrono::nanoseconds> latencies_;
  std::size_t foreign_ = 0;
  bool ended_ = false;
};

}  // namespace live_fanout
