#pragma once
// The demo's and the test's traffic: rooms of clients, messages published to the rooms, and
// the check that every client received exactly what it should.
//
// What "should" means with pub/sub, which keeps nothing: PUBLISH (SPUBLISH) answers how many
// subscribers received the message. The fan-out server is the only subscriber, so a message
// answered with 1 reached it and must reach every client of its room, in publish order; one
// answered with 0 reached nobody (the server's subscription was not in place: Redis had just
// restarted and the subscriber had not resubscribed yet) and is lost by design. A PUBLISH
// that fails (Redis down) published nothing. (In a cluster only SPUBLISH counts every
// subscriber: PUBLISH counts those of the node it ran on.)

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "room_client.hpp"

namespace live_fanout {

enum class publish_command { publish, spublish };

/// Per room: the next sequence number and what the server answered for each message.
struct publish_log {
  std::map<std::string, std::uint64_t> next_seq;
  /// Messages a subscriber received (PUBLISH answered >= 1): every client must get them.
  std::map<std::string, std::vector<std::uint64_t>> heard;
  /// Messages nobody received (PUBLISH answered 0): no client may get them.
  std::map<std::string, std::vector<std::uint64_t>> unheard;

  std::size_t heard_count() const;
  std::size_t unheard_count() const;
};

/// The channel of a room: "room.NAME".
std::string room_channel(const std::string& room);

/// Publishes `count` messages to each room (the rooms concurrently, each room's messages one
/// after the other) with `padding` extra bytes each, recording the answers in `log`.
asio::awaitable<void> publish_messages(corvo::redis::client& redis, std::vector<std::string> rooms,
                                       std::size_t count, publish_command command,
                                       std::size_t padding, publish_log& log);

/// Publishes `count` messages to `room`, each one only after `pacer` (a client of the room)
/// has received the previous one: a client that keeps up this way never has more than one
/// frame queued, so whatever another client of the room loses is that client's own doing.
/// Returns false if a message took longer than `limit` to reach the pacer.
asio::awaitable<bool> publish_paced(corvo::redis::client& redis, std::string room,
                                    std::size_t count, publish_command command, std::size_t padding,
                                    const room_client& pacer, publish_log& log,
                                    std::chrono::milliseconds limit);

/// For each room, publishes one message at a time (every `pause`) until one is heard: the
/// server's subscription is back. Failed PUBLISHes (Redis not reachable yet) are retried
/// with the same sequence number. Returns false if `limit` passed first.
asio::awaitable<bool> publish_until_heard(corvo::redis::client& redis,
                                          std::vector<std::string> rooms, publish_command command,
                                          publish_log& log, std::chrono::milliseconds pause,
                                          std::chrono::milliseconds limit);

using client_list = std::vector<std::unique_ptr<room_client>>;

/// True when every client has received at least as many messages as were heard in its room.
bool all_delivered(const client_list& clients, const publish_log& log);

/// Every client received exactly the heard messages of its room, in order, and nothing else;
/// each failure is one line naming the client.
std::vector<std::string> check_delivery(const client_list& clients, const publish_log& log);

/// Percentile `p` (0..1) of every client's latencies, in milliseconds.
double latency_percentile_ms(const client_list& clients, double p);

}  // namespace live_fanout
