#pragma once
// A pub/sub subscriber on its own Redis connection(s): channels, patterns and shard
// channels subscribed and unsubscribed at any time, messages handed out by an awaitable
// receive() through a bounded buffer with an explicit overflow policy.
//
//   pubsub::subscriber sub(ex, redis::client_config::from(app_config));
//   co_spawn(ex, sub.run(), log_errors);          // connection(s) + reader, until cancel()
//   std::vector<std::string> channels{"orders"};   // named: GCC 12 (see DESIGN §9)
//   co_await sub.subscribe(channels);             // confirmed by the server on return
//   for (;;) {
//     pubsub::message m = co_await sub.receive();
//     auto order = m.as<order_event>();           // JSON payloads: typed decode
//   }
//
// Who restores subscriptions (one mechanism per kind, never two competing):
// - The subscriber owns the *desired* set (channels(), patterns(), shard_channels()): the
//   calls below change it and send the command; the server's confirmation completes them.
// - Standalone server: the connection re-issues the subscriptions the server had confirmed
//   after every reconnect (a restart, a network cut) before any other request; the
//   subscriber sends nothing itself, so the two never race.
// - Cluster, shard channels: the cluster client keeps them (ssubscribe()): one SSUBSCRIBE
//   per slot on a subscriber connection to the slot's master, checked for ownership first
//   (a MOVED is never met on the subscribing connection), moved after a failover and after
//   the server's unsolicited `sunsubscribe` when the slot migrates. Never CROSSSLOT.
// - Cluster, channels and patterns: the subscriber pins them to one master (through a
//   slot it owns). When a topology refresh shows that master is no longer one (failover,
//   removal), the cluster client has closed its connection, and the subscriber subscribes
//   the whole set again on the new owner of the pinned slot. While the master only
//   reconnects, its connection restores them as on a standalone server.
// Every restore shows in stats().resubscriptions: server confirmations of a desired
// channel that had been confirmed before.
//
// Refusals: a subscription the server refuses (NOPERM: an ACL user without rights on the
// channel) makes the call throw system_error(redis::error::subscription_refused); the
// names are not added to the desired set and the connection stays in step (the refused
// command's replies are consumed like any other).
//
// Slow consumers: run() reads every push as soon as it arrives, so the server's output
// buffer for this client stays empty and `client-output-buffer-limit pubsub` never
// disconnects a subscriber whose own process is slow; the subscriber's bounded buffer
// (message_buffer.hpp) takes the backlog instead, and its overflow policy decides what is
// lost, counted in stats().dropped. Only a process that stops reading its socket (blocked
// loop thread) meets the server's limit; then the connection is closed by the server,
// reconnected and resubscribed, and the messages published meanwhile are lost (pub/sub
// has no replay). See docs/pubsub.md.
//
// Threading: none; use the subscriber from its executor (one thread or a strand).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/pubsub/message.hpp>
#include <corvo/pubsub/message_buffer.hpp>
#include <corvo/redis/client.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::pubsub {

namespace asio = boost::asio;

struct subscriber_options {
  /// Bounds of the buffer between the connection and receive().
  buffer_limits buffer;
  /// What a full buffer does with the next message (see message_buffer.hpp).
  overflow_policy overflow = overflow_policy::drop_oldest;
  /// Cluster only: how often the subscriber looks for a topology refresh that retired the
  /// master its channels and patterns are pinned to (a cheap counter check when nothing
  /// changed).
  std::chrono::milliseconds topology_check_interval{100};

  /// From the application configuration, below `section` (default "pubsub"):
  ///   buffer.max_messages      messages buffered at most (default 10000)
  ///   buffer.max_bytes         bytes buffered at most, 0 = no bound (default 0)
  ///   overflow                 "drop_oldest" (default), "drop_newest" or "disconnect"
  ///   topology_check_interval  duration (default 100ms)
  /// Throws corvo::config_error naming the key for a wrong type, a bad policy name or an
  /// unknown key below the section.
  static subscriber_options from(const corvo::config& cfg, std::string_view section = "pubsub");
};

/// Counters and the lag of a subscriber, for logs, metrics and tests.
struct subscriber_stats {
  std::uint64_t received = 0;         ///< messages read from the connection(s)
  std::uint64_t delivered = 0;        ///< messages handed out by receive()
  std::uint64_t dropped = 0;          ///< messages the overflow policy dropped
  std::uint64_t resubscriptions = 0;  ///< restores confirmed by the server (see the top)
  std::uint64_t refused = 0;          ///< subscribe calls the server refused (NOPERM, ...)
  std::size_t buffered = 0;           ///< messages waiting for receive()
  std::size_t buffered_bytes = 0;     ///< their channel + pattern + payload bytes
  /// How long the oldest buffered message has waited (zero when none): the lag.
  std::chrono::steady_clock::duration oldest_age{};
};

class subscriber {
 public:
  using executor_type = asio::any_io_executor;

  /// A subscriber with its own client (standalone or cluster, as `redis` says). Nothing
  /// connects before run().
  subscriber(executor_type executor, redis::client_config redis, subscriber_options options = {});
  /// Stops like cancel().
  ~subscriber();
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  executor_type get_executor() const noexcept;

  /// Runs the connection(s) and reads their pushes into the buffer until cancel() (then
  /// returns) or until the buffer overflows under overflow_policy::disconnect (then throws
  /// system_error(pubsub::error::buffer_overflow) after closing the connections). Terminal
  /// cancellation of the awaiting coroutine stops it too (throws operation_aborted). Call
  /// once.
  asio::awaitable<void> run();
  /// Stops run() and the connections; waiting receive() calls get the buffered messages,
  /// then system_error(pubsub::error::subscriber_stopped).
  void cancel();

  /// Adds channels (SUBSCRIBE) / patterns (PSUBSCRIBE) / shard channels (SSUBSCRIBE) to the
  /// desired set and subscribes them; returns when the server confirmed them (shard
  /// channels in a cluster: when every slot's SSUBSCRIBE was confirmed). Names already
  /// desired are not sent again. Waits for the connection when it is down. Throws
  /// system_error: redis::error::subscription_refused (nothing added), connection_closed
  /// after cancel().
  asio::awaitable<void> subscribe(std::vector<std::string> channels);
  asio::awaitable<void> psubscribe(std::vector<std::string> patterns);
  asio::awaitable<void> ssubscribe(std::vector<std::string> shard_channels);

  /// Removes names from the desired set and unsubscribes them; an empty list removes every
  /// name of that kind. Names not desired are ignored.
  asio::awaitable<void> unsubscribe(std::vector<std::string> channels = {});
  asio::awaitable<void> punsubscribe(std::vector<std::string> patterns = {});
  asio::awaitable<void> sunsubscribe(std::vector<std::string> shard_channels = {});

  /// The oldest buffered message, waiting for one when the buffer is empty. Several
  /// coroutines may wait; each message goes to one of them. Cancellation (terminal): throws
  /// operation_aborted and no message is lost (it stays buffered). After cancel() or an
  /// overflow under `disconnect`: the buffered messages first, then system_error with
  /// pubsub::error::subscriber_stopped / buffer_overflow.
  asio::awaitable<message> receive();

  /// Counters and lag, as of now.
  subscriber_stats stats() const;

  /// The desired sets.
  const std::set<std::string>& channels() const noexcept;
  const std::set<std::string>& patterns() const noexcept;
  const std::set<std::string>& shard_channels() const noexcept;

  /// The client this subscriber reads from (for its stats; do not receive() from it).
  redis::client& client() noexcept;

  /// Cluster: the slot whose master holds this subscriber's channels and patterns (their
  /// commands are routed by it). It changes only when that slot migrates away while its
  /// master stays a master: another slot of the same master is pinned then, so the commands
  /// keep reaching the connection that holds the subscriptions. Meaningless standalone.
  std::uint16_t pin_slot() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::pubsub
