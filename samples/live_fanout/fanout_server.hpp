#pragma once
// The live fan-out server: WebSocket clients join a room (`ws://HOST:PORT/rooms/NAME`), and
// every message published on the room's Redis channel `room.NAME` is written to each of them.
//
//   Redis PUBLISH / SPUBLISH room.NAME ──▶ pubsub::subscriber ──route──▶ room NAME
//                                                     ├──▶ client outbox ──▶ WebSocket
//                                                     └──▶ client outbox ──▶ WebSocket
//
// How the server subscribes (`live_fanout.subscription`):
// - pattern: one PSUBSCRIBE `room.*` at start, every room's messages arrive;
// - channel: SUBSCRIBE `room.NAME` when the first client joins room NAME;
// - shard:   SSUBSCRIBE `room.NAME` likewise (a shard channel: in a cluster it lives on the
//            master of its slot, publish it with SPUBLISH).
// A client receives the text frame `{"joined":"NAME"}` once the subscription is confirmed by
// the server: every message published after the client read that frame reaches it.
//
// Redis restart: the subscriber restores its subscriptions after reconnecting (see
// corvo/pubsub/subscriber.hpp); the clients stay connected. Pub/sub keeps nothing: a message
// published while the subscription is not in place (PUBLISH answers 0 receivers) reaches
// nobody, one that the server received is delivered to every client of the room, in order.
//
// Slow consumers: each client has a bounded outbox (`live_fanout.client_queue` frames). A
// client that does not read fills its socket buffers, then its outbox; then
// `live_fanout.slow_policy` decides: drop_oldest (the oldest queued frame is dropped and
// counted) or disconnect (the client is closed and counted). Either way the other clients of
// the room are not held up: routing never waits for a socket.
//
// GET /stats answers the counters below as JSON.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <corvo/core/config.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/client.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace live_fanout {

namespace asio = boost::asio;

enum class subscription_mode { channel, pattern, shard };
enum class slow_policy { drop_oldest, disconnect };

/// "channel" / "pattern" / "shard"; "drop_oldest" / "disconnect".
const char* to_string(subscription_mode mode) noexcept;
const char* to_string(slow_policy policy) noexcept;

struct fanout_options {
  /// Where the server listens; port 0 picks a free one (see fanout_server::port()).
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 0;
  subscription_mode subscription = subscription_mode::pattern;
  /// Frames queued per client at most.
  std::size_t client_queue = 256;
  slow_policy policy = slow_policy::drop_oldest;

  /// From section `live_fanout` of the configuration: listen ("host:port"), subscription,
  /// client_queue, slow_policy. Throws corvo::config_error naming the key for a bad value.
  static fanout_options from(const corvo::config& cfg);
};

/// The server's counters.
struct fanout_stats {
  std::size_t clients = 0;            ///< WebSocket clients connected now
  std::size_t rooms = 0;              ///< rooms with at least one client now
  std::uint64_t joined = 0;           ///< clients that ever joined
  std::uint64_t routed = 0;           ///< messages taken from the subscriber
  std::uint64_t unroutable = 0;       ///< of those, for a room without clients
  std::uint64_t queued = 0;           ///< frames put in client outboxes
  std::uint64_t written = 0;          ///< frames written to WebSockets
  std::uint64_t dropped = 0;          ///< frames dropped by drop_oldest
  std::uint64_t slow_disconnects = 0; ///< clients closed by the disconnect policy
  corvo::pubsub::subscriber_stats subscriber;
};

class fanout_server {
 public:
  /// Binds the listening socket at once (port() is valid on return); nothing else runs
  /// before run(). Throws system_error when the address cannot be bound.
  fanout_server(asio::any_io_executor executor, corvo::redis::client_config redis,
                fanout_options options, corvo::pubsub::subscriber_options subscriber = {});
  ~fanout_server();
  fanout_server(const fanout_server&) = delete;
  fanout_server& operator=(const fanout_server&) = delete;

  /// The port the server listens on.
  std::uint16_t port() const noexcept;
  const fanout_options& options() const noexcept;

  /// Runs the subscriber, the router and the accept loop with every client session until
  /// cancelled (terminal): then closes the listener and every client, waits for all of them
  /// and throws operation_aborted. Call once.
  asio::awaitable<void> run();

  fanout_stats stats() const;
  /// stats() as a JSON object (GET /stats).
  std::string stats_json() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace live_fanout
