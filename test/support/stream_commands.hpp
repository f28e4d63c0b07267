#pragma once
// Raw stream commands for the stream admin tests: appending entries, creating groups,
// reading as a consumer, writing dead letters by XADD in the layout of
// corvo/stream/dead_letter.hpp (as the consumer writes them).

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/client.hpp>
#include <string>
#include <utility>
#include <vector>

namespace corvo::test {

using stream_fields = std::vector<std::pair<std::string, std::string>>;

/// Runs `req` (one command); returns the reply as text ("" for a null or an aggregate).
/// Throws on an error reply.
boost::asio::awaitable<std::string> run_command(redis::client& redis, redis::request req);

/// One command from its words (not a coroutine: the words are serialized before it returns,
/// so literals are fine inside a co_await).
template <class... Args>
boost::asio::awaitable<std::string> command(redis::client& redis, std::string_view name,
                                            const Args&... args) {
  redis::request req;
  req.push(name, args...);
  return run_command(redis, std::move(req));
}

/// One field/value pair (built outside coroutines: GCC 12 rejects braced lists of strings
/// inside them).
stream_fields field(std::string name, std::string value);

/// XADD `stream` `id` (default "*") with `fields`; returns the id.
boost::asio::awaitable<std::string> append(redis::client& redis, std::string stream,
                                           stream_fields fields, std::string id = "*");

/// XREADGROUP GROUP `group` `consumer` COUNT `count` STREAMS `stream` >; returns the ids read.
boost::asio::awaitable<std::vector<std::string>> read_group(redis::client& redis,
                                                            std::string stream, std::string group,
                                                            std::string consumer,
                                                            std::size_t count);

/// The fields of entry `id` of `stream` (empty when it does not exist).
boost::asio::awaitable<stream_fields> entry_fields(redis::client& redis, std::string stream,
                                                   std::string id);

/// The ids of `stream`, in order.
boost::asio::awaitable<std::vector<std::string>> stream_ids(redis::client& redis,
                                                            std::string stream);

/// The dead-letter metadata pairs, in the layout's order, followed by `original`.
stream_fields dead_letter_fields(const std::string& source_stream, const std::string& source_id,
                                 const std::string& group, const std::string& consumer,
                                 unsigned deliveries, const std::string& reason, long long at_ms,
                                 const stream_fields& original);

}  // namespace corvo::test
