#include <corvo/pubsub/message.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/redis/cluster/slot.hpp>

namespace corvo::pubsub {

namespace {

// One slot of every master, so a per-node command reaches each of them once.
std::vector<std::uint16_t> one_slot_per_master(redis::client& client) {
  std::vector<std::uint16_t> slots;
  const auto map = client.cluster()->topology();
  for (std::size_t i = 0; i < map.shards().size(); ++i) {
    for (const auto& [first, last] : map.shards()[i].ranges) {
      if (map.shard_of(first) == i) {
        slots.push_back(first);
        break;
      }
    }
  }
  return slots;
}

// A PUBSUB NUMSUB / SHARDNUMSUB reply: channel, count, channel, count ...
void add_counts(const std::vector<std::pair<std::string, std::int64_t>>& reply,
                std::map<std::string, std::int64_t>& out) {
  for (const auto& [channel, count] : reply) {
    out[channel] += count;
  }
}

asio::awaitable<std::int64_t> publish_with(redis::client& client, const char* command,
                                           std::string channel, std::string payload) {
  redis::request req;
  req.push(command, channel, payload);
  redis::response<std::int64_t> resp;
  // In a cluster, PUBLISH goes to the channel's slot owner like SPUBLISH: one path through
  // the cluster bus per channel keeps one publisher's messages in order.
  co_await client.exec(req, resp, redis::route_hint::for_key(channel));
  co_return std::get<0>(resp).value();
}

// Waits for the first topology so the slots of every master are known.
asio::awaitable<void> wait_for_topology(redis::client& client) {
  redis::request ping;
  ping.push("PING");
  co_await client.exec(ping);
}

}  // namespace

asio::awaitable<std::int64_t> publish(redis::client& client, std::string channel,
                                      std::string payload) {
  co_return co_await publish_with(client, "PUBLISH", std::move(channel), std::move(payload));
}

asio::awaitable<std::int64_t> spublish(redis::client& client, std::string channel,
                                       std::string payload) {
  co_return co_await publish_with(client, "SPUBLISH", std::move(channel), std::move(payload));
}

asio::awaitable<std::int64_t> publish(redis::client& client, std::string channel,
                                      std::string payload, std::string traceparent) {
  std::string traced = with_traceparent(traceparent, std::move(payload));
  co_return co_await publish_with(client, "PUBLISH", std::move(channel), std::move(traced));
}

asio::awaitable<std::int64_t> spublish(redis::client& client, std::string channel,
                                       std::string payload, std::string traceparent) {
  std::string traced = with_traceparent(traceparent, std::move(payload));
  co_return co_await publish_with(client, "SPUBLISH", std::move(channel), std::move(traced));
}

asio::awaitable<std::map<std::string, std::int64_t>> numsub(redis::client& client,
                                                            std::vector<std::string> channels) {
  std::map<std::string, std::int64_t> out;
  for (const auto& channel : channels) {
    out[channel] = 0;
  }
  if (channels.empty()) {
    co_return out;
  }
  redis::request req;
  req.push("PUBSUB", "NUMSUB", channels);
  if (!client.is_cluster()) {
    redis::response<std::vector<std::pair<std::string, std::int64_t>>> resp;
    co_await client.exec(req, resp);
    add_counts(std::get<0>(resp).value(), out);
    co_return out;
  }
  co_await wait_for_topology(client);
  for (const auto slot : one_slot_per_master(client)) {
    redis::response<std::vector<std::pair<std::string, std::int64_t>>> resp;
    co_await client.exec(req, resp, redis::route_hint::for_slot(slot));
    add_counts(std::get<0>(resp).value(), out);
  }
  co_return out;
}

asio::awaitable<std::map<std::string, std::int64_t>> shard_numsub(
    redis::client& client, std::vector<std::string> channels) {
  std::map<std::string, std::int64_t> out;
  for (const auto& channel : channels) {
    out[channel] = 0;
  }
  if (channels.empty()) {
    co_return out;
  }
  redis::request req;
  req.push("PUBSUB", "SHARDNUMSUB", channels);
  if (!client.is_cluster()) {
    redis::response<std::vector<std::pair<std::string, std::int64_t>>> resp;
    co_await client.exec(req, resp);
    add_counts(std::get<0>(resp).value(), out);
    co_return out;
  }
  // Every master, added up: a node that does not serve a channel's slot counts 0 for it,
  // and this client's map may be stale after a migration (PUBSUB gets no MOVED).
  co_await wait_for_topology(client);
  for (const auto slot : one_slot_per_master(client)) {
    redis::response<std::vector<std::pair<std::string, std::int64_t>>> resp;
    co_await client.exec(req, resp, redis::route_hint::for_slot(slot));
    add_counts(std::get<0>(resp).value(), out);
  }
  co_return out;
}

asio::awaitable<std::int64_t> numpat(redis::client& client) {
  redis::request req;
  req.push("PUBSUB", "NUMPAT");
  if (!client.is_cluster()) {
    redis::response<std::int64_t> resp;
    co_await client.exec(req, resp);
    co_return std::get<0>(resp).value();
  }
  co_await wait_for_topology(client);
  std::int64_t total = 0;
  for (const auto slot : one_slot_per_master(client)) {
    redis::response<std::int64_t> resp;
    co_await client.exec(req, resp, redis::route_hint::for_slot(slot));
    total += std::get<0>(resp).value();
  }
  co_return total;
}

}  // namespace corvo::pubsub
