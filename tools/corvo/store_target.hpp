#pragma once
// Which scheduler store the `corvo schedule|dead|stats` commands talk to, and the check that
// it answers, shared by those commands.
//
// The target comes from the application's own configuration file (--config: the same
// redis section, scheduler.namespace and scheduler.shards the application reads, through
// the same code, so the CLI writes where its dispatchers claim), overridden by --redis /
// --cluster / --namespace. The shard count is never guessed: it comes from --config,
// --shards, or the count the namespace stored in Redis (stored_shard_count).

#include <boost/asio/awaitable.hpp>
#include <boost/program_options/options_description.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <optional>
#include <string>
#include <vector>

namespace corvo::tool {

/// The options every store command takes.
struct store_flags {
  std::string config_file;
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string name_space;
  unsigned shards = 0;  // 0: not given
  std::string connect_timeout = "3s";
  bool json_output = false;
};

/// Adds --help, --config, --redis, --cluster, --namespace, --shards, --connect-timeout, --json.
void add_store_flags(boost::program_options::options_description& options, store_flags& flags);

struct store_target {
  redis::client_config redis;
  /// Addresses to name in messages ("host:port", or the seeds of a cluster).
  std::vector<std::string> addresses;
  std::string name_space;
  /// Empty when neither --config nor --shards gave it: then the count the namespace stored
  /// in Redis is used, or the command fails asking for one of the two.
  std::optional<unsigned> shards;
  std::chrono::milliseconds connect_timeout{3000};
  /// --config's scheduler.events: the CLI's own changes (add, cancel, replay, import) write
  /// task events when the application's do.
  schedule::events_options events;
  /// --config's scheduler.redis.compact and compact_after: the CLI stores tasks where the
  /// application's processes do (`schedule compact` moves by compact_after).
  bool compact = schedule::redis_store_options{}.compact;
  std::chrono::milliseconds compact_after = schedule::redis_store_options{}.compact_after;
};

/// Reads --config (with CORVO_* overrides) and applies the flags. Throws config_error for a
/// bad file (unknown keys included) and std::invalid_argument for contradicting flags.
store_target resolve_target(const store_flags& flags);

/// Connects to every address of `target` over TCP and has `client` answer a PING, all within
/// target.connect_timeout. Throws std::runtime_error naming the address and the error
/// ("Connection refused", "no answer within 3000ms", the server's auth error).
boost::asio::awaitable<void> check_reachable(redis::client& client, const store_target& target);

/// The shard count stored in Redis for `name_space`, or nothing when Redis has none (or the
/// store cannot tell).
boost::asio::awaitable<std::optional<unsigned>> stored_shard_count(redis::client& client,
                                                                   const std::string& name_space);

/// The store options for `target`, the shard count taken from the target or, failing that,
/// from Redis (stored_shard_count). Throws std::invalid_argument when neither knows it.
boost::asio::awaitable<schedule::redis_store_options> store_options(redis::client& client,
                                                                    const store_target& target);

}  // namespace corvo::tool
