#pragma once
// The Redis store's event reader (redis_store::events): reads every shard's event stream
// `{<namespace>:<shard>}:events` with XREAD BLOCK on dedicated connections.

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/events.hpp>
#include <memory>
#include <string>
#include <vector>

namespace corvo::schedule::detail {

/// A reader of the streams `stream_keys` (one per shard, in shard order) from `query.from`,
/// over connections made with `commands.dedicated()` (standalone: one; cluster: one per
/// shard). Resolves events_from_now with one round trip over `commands`.
asio::awaitable<std::unique_ptr<event_reader>> make_redis_event_reader(
    redis::client& commands, std::vector<std::string> stream_keys, event_query query);

/// The event a stream entry holds (`shard`, `position` = the entry id); throws
/// std::runtime_error for an entry without a known kind.
task_event decode_event(unsigned shard, std::string position,
                        const std::vector<std::string>& fields);

}  // namespace corvo::schedule::detail
