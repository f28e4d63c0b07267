#pragma once
// The live fan-out server: WebSocket clients join a room (`ws://HOST:PORT/rooms/NAME`), and
// every message published on the room's Redis channel `room.NAME` is written to each of them.
//
//   Redis PUBLISH / SPUBLISH room.NAME ──▶ pubsub::subscriber ──route──▶ room NAME
//                                                     ├──▶ client outbox ──▶ WebSocket
//                                                     └──▶ client outbox ──▶ WebSocket
//
// Two parts with different lives (add_to() puts them on a corvo::health::app):
// - serve_clients(): the WebSocket listener and the client sessions, from start to shutdown
//   (a service). Clients stay connected whatever Redis does.
// - run_subscriber(): one subscriber (its own Redis connection) that subscribes what the
//   rooms need and routes its messages (a component, supervised under the Redis dependency:
//   stopped when Redis fails, started again, with a new subscriber, when it is back).
//
// How the server subscribes (`live_fanout.subscription`):
// - pattern: one PSUBSCRIBE `room.*` when the subscriber starts, every room's messages arrive;
// - channel: SUBSCRIBE `room.NAME` when the first client joins room NAME;
// - shard:   SSUBSCRIBE `room.NAME` likewise (a shard channel: in a cluster it lives on the
//            master of its slot, publish it with SPUBLISH).
// A new subscriber (after a stop) subscribes the pattern, or every room joined so far, before
// it routes anything. A client receives the text frame `{"joined":"NAME"}` once the
// subscription is confirmed by the server: every message published after the client read that
// frame reaches it while the subscriber runs. A client that joins while no subscriber runs
// gets its joined frame when the next one has subscribed its room.
//
// Redis restart: while the subscriber runs, its connection restores the subscriptions after
// reconnecting (see corvo/pubsub/subscriber.hpp); when the health monitor saw Redis down,
// the subscriber was stopped instead and the next one subscribes again. Either way the
// clients stay connected. Pub/sub keeps nothing: a message published while the subscription
// is not in place (PUBLISH answers 0 receivers) reaches nobody; one that the server received
// is delivered to every client of the room, in order (a stopping subscriber routes what it
// had received before it ends).
//
// Slow consumers: each client has a bounded outbox (`live_fanout.client_queue` frames). A
// client that does not read fills its socket buffers, then its outbox; then
// `live_fanout.slow_policy` decides: drop_oldest (the oldest queued frame is dropped and
// counted) or disconnect (the client is closed and counted). Either way the other clients of
// the room are not held up: routing never waits for a socket.
//
// GET /stats answers the counters below as JSON (with add_to(): and the subscriber
// component's supervision: state, starts, stops, failures, stop_overruns).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <corvo/core/config.hpp>
#include <corvo/health/app.hpp>
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
  std::size_t clients = 0;             ///< WebSocket clients connected now (joined a room)
  std::size_t joining = 0;             ///< clients waiting for their room's subscription now
  std::size_t rooms = 0;               ///< rooms with at least one client now
  std::uint64_t joined = 0;            ///< clients that ever joined
  std::uint64_t routed = 0;            ///< messages taken from the subscriber
  std::uint64_t unroutable = 0;        ///< of those, for a room without clients
  std::uint64_t queued = 0;            ///< frames put in client outboxes
  std::uint64_t written = 0;           ///< frames written to WebSockets
  std::uint64_t dropped = 0;           ///< frames dropped by drop_oldest
  std::uint64_t slow_disconnects = 0;  ///< clients closed by the disconnect policy
  std::uint64_t subscriber_runs = 0;   ///< subscribers started (run_subscriber() calls)
  /// The subscribers' counters, summed over every run (buffered, buffered_bytes and
  /// oldest_age: the running one's).
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

  /// The accept loop with every client session, until cancelled (terminal): then closes the
  /// listener and every client, waits for all of them and throws operation_aborted. Call
  /// once.
  asio::awaitable<void> serve_clients();

  /// One subscriber's life: a new pubsub::subscriber (its own connection) subscribes the
  /// pattern or every room joined so far, then routes its messages until cancelled
  /// (terminal): then it is stopped, the messages it had received are routed, and
  /// operation_aborted is thrown. Throws what the subscriber throws (a subscription the
  /// server refused). At most one runs at a time; call again after it ended.
  asio::awaitable<void> run_subscriber();

  /// serve_clients() and one run_subscriber(), unsupervised (the subscriber's connection
  /// restores its subscriptions after a reconnect), until cancelled (terminal): throws
  /// operation_aborted once both ended. For tests and programs without a health monitor.
  asio::awaitable<void> run();

  /// Puts the server on `app`: the service "websocket" (serve_clients) and the component
  /// "subscriber" (run_subscriber) depending on `redis`, under the app's policy. GET /stats
  /// then reports the component's supervision. Call once, before app.run().
  void add_to(corvo::health::app& app, corvo::health::dependency redis);

  fanout_stats stats() const;
  /// stats() as a JSON object (GET /stats).
  std::string stats_json() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace live_fanout
