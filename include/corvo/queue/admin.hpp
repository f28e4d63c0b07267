#pragma once
// Introspection and dead-letter administration of a queue (both kinds), for operators and
// `corvo queue`.
//
//   auto info = co_await corvo::queue::inspect(redis, "coupons");
//   // info.depth, info.dead, info.consumers[i].processing / .alive
//   auto letters = co_await corvo::queue::dead_letters(redis, "coupons", 0, 50);
//   co_await corvo::queue::replay_dead(redis, "coupons", letters[0].id);
//
// Dead-letter entry (written by the queues' scripts): one line of JSON metadata
// {"reason", "attempts", "consumer", "at_ms"}, a newline, then the item's envelope.
// Replay puts the item at the back of the line (LPUSH) with its attempts reset to 0 (same id);
// purge deletes. Both work on every dead letter (empty id) or on those of one item id.

#include <boost/asio/awaitable.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/redis/client.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::queue {

namespace asio = boost::asio;

struct consumer_info {
  std::string id;
  /// Items in its processing list.
  std::size_t processing = 0;
  /// Its heartbeat key exists.
  bool alive = false;
  /// Milliseconds until its heartbeat expires (-1 when it has expired).
  std::int64_t heartbeat_ttl_ms = -1;
  /// Server time (ms since the epoch) of its last heartbeat.
  std::int64_t last_heartbeat_ms = 0;
};

struct queue_info {
  std::string name;
  /// Items waiting in the queue.
  std::size_t depth = 0;
  /// Registered consumers (reliable queues), sorted by id.
  std::vector<consumer_info> consumers;
  /// Dead letters kept.
  std::size_t dead = 0;
  /// Failed items waiting for their retry delay (reliable queues with retry_delay).
  std::size_t delayed = 0;
};

struct dead_letter {
  /// The item's id (empty for an item pushed without an envelope).
  std::string id;
  /// Deliveries it had.
  std::uint32_t attempts = 0;
  std::string reason;
  /// The consumer that dead-lettered it (or whose death did).
  std::string consumer;
  /// When (server time, ms since the epoch).
  std::int64_t at_ms = 0;
  std::string body;
};

/// Parses one stored dead-letter entry; throws std::invalid_argument when it is not one.
dead_letter parse_dead_letter(std::string_view entry);

/// Depth, consumers with their processing lists and heartbeats, and dead letters of `queue`.
asio::awaitable<queue_info> inspect(redis::client& redis, std::string queue);

/// Dead letters newest first, from `offset`, at most `limit`.
asio::awaitable<std::vector<dead_letter>> dead_letters(redis::client& redis, std::string queue,
                                                       std::size_t offset, std::size_t limit);

/// Puts dead letters back in the queue (every one when `id` is empty, else those of item
/// `id`), oldest first, attempts reset; returns how many.
asio::awaitable<std::size_t> replay_dead(redis::client& redis, std::string queue,
                                         std::string id = {});

/// Deletes dead letters (every one when `id` is empty, else those of item `id`); returns how
/// many.
asio::awaitable<std::size_t> purge_dead(redis::client& redis, std::string queue,
                                        std::string id = {});

}  // namespace corvo::queue
