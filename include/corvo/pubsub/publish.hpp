#pragma once
// Publishing and introspection on any redis::client (standalone or cluster).
//
//   co_await pubsub::publish(redis, "orders", R"({"id":7})");       // raw payload
//   order_event e{7, "paid"};
//   co_await pubsub::publish_json(redis, "orders", e);               // Boost.JSON value_from
//   co_await pubsub::spublish(redis, "{shop}:orders", payload);     // shard channel
//   co_await pubsub::publish(redis, "orders", payload, traceparent); // with a W3C trace
//
// Order: in a cluster, PUBLISH is sent to the master of the channel's slot (as SPUBLISH
// is): the other nodes' subscribers get it over that master's cluster bus links, so the
// messages one publisher sends on one channel arrive in order everywhere. (Sent to any
// master, two messages could take two paths and arrive swapped.)
//
// Counts: PUBLISH answers the subscribers that received the message on the node it ran on
// (in a cluster, the other nodes' subscribers get it through the cluster bus and are not
// counted); SPUBLISH runs on the channel's slot owner, whose subscribers are all of them.
// numsub() and shard_numsub() therefore ask every master of a cluster and add the counts
// up (a stale slot map cannot misdirect them: PUBSUB commands get no MOVED).

#include <boost/asio/awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <corvo/redis/client.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::pubsub {

namespace asio = boost::asio;

/// PUBLISH `payload` on `channel`; returns the receivers counted by the server (see the
/// top). Throws system_error: a connection failure's code, or redis::error::server_error
/// with the server's text for an error reply (e.g. NOPERM).
asio::awaitable<std::int64_t> publish(redis::client& client, std::string channel,
                                      std::string payload);
/// SPUBLISH `payload` on shard channel `channel` (routed to its slot's master).
asio::awaitable<std::int64_t> spublish(redis::client& client, std::string channel,
                                       std::string payload);

/// PUBLISH with a W3C trace context: subscribers get `payload` as it is and the trace in
/// message::traceparent (message.hpp describes how it travels). An empty traceparent
/// publishes `payload` alone; an invalid one throws std::invalid_argument before anything
/// is sent.
asio::awaitable<std::int64_t> publish(redis::client& client, std::string channel,
                                      std::string payload, std::string traceparent);
/// SPUBLISH with a W3C trace context (as publish above).
asio::awaitable<std::int64_t> spublish(redis::client& client, std::string channel,
                                       std::string payload, std::string traceparent);

/// PUBLISH `value` serialized as JSON through boost::json::value_from.
template <class T>
asio::awaitable<std::int64_t> publish_json(redis::client& client, std::string channel,
                                           const T& value) {
  return publish(client, std::move(channel),
                 boost::json::serialize(boost::json::value_from(value)));
}

/// SPUBLISH `value` serialized as JSON through boost::json::value_from.
template <class T>
asio::awaitable<std::int64_t> spublish_json(redis::client& client, std::string channel,
                                            const T& value) {
  return spublish(client, std::move(channel),
                  boost::json::serialize(boost::json::value_from(value)));
}

/// PUBSUB NUMSUB: subscribers of each channel (every master's count added up in a
/// cluster). Every asked channel is in the result, 0 when nobody subscribes.
asio::awaitable<std::map<std::string, std::int64_t>> numsub(redis::client& client,
                                                            std::vector<std::string> channels);
/// PUBSUB SHARDNUMSUB: subscribers of each shard channel (every master asked in a cluster).
asio::awaitable<std::map<std::string, std::int64_t>> shard_numsub(
    redis::client& client, std::vector<std::string> channels);
/// PUBSUB NUMPAT: the number of distinct patterns subscribed (in a cluster every master's
/// count added up: a pattern subscribed on two masters counts twice).
asio::awaitable<std::int64_t> numpat(redis::client& client);

}  // namespace corvo::pubsub
