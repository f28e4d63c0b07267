#include "support/stream_commands.hpp"

#include <corvo/redis/response.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <map>
#include <optional>
#include <stdexcept>

namespace corvo::test {

namespace asio = boost::asio;
using nodes = std::vector<redis::resp3::node>;

stream_fields field(std::string name, std::string value) {
  stream_fields out;
  out.emplace_back(std::move(name), std::move(value));
  return out;
}

asio::awaitable<std::string> run_command(redis::client& redis, redis::request req) {
  redis::response<nodes> resp;
  co_await redis.exec(req, resp);
  const auto& reply = std::get<0>(resp).value();
  if (reply.empty() || redis::resp3::is_aggregate(reply.front().data_type)) {
    co_return std::string();
  }
  co_return reply.front().value;
}

asio::awaitable<std::string> append(redis::client& redis, std::string stream, stream_fields fields,
                                    std::string id) {
  redis::request req;
  req.push("XADD", stream, id, fields);
  redis::response<std::string> resp;
  co_await redis.exec(req, resp);
  co_return std::get<0>(resp).value();
}

asio::awaitable<std::vector<std::string>> read_group(redis::client& redis, std::string stream,
                                                     std::string group, std::string consumer,
                                                     std::size_t count) {
  redis::request req;
  req.push("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS", stream, ">");
  using entries = std::vector<std::pair<std::string, std::vector<std::string>>>;
  redis::response<std::optional<std::map<std::string, entries>>> resp;
  co_await redis.exec(req, resp);
  std::vector<std::string> ids;
  const auto& reply = std::get<0>(resp).value();
  if (reply) {
    for (const auto& [name, read] : *reply) {
      for (const auto& e : read) {
        ids.push_back(e.first);
      }
    }
  }
  co_return ids;
}

asio::awaitable<stream_fields> entry_fields(redis::client& redis, std::string stream,
                                            std::string id) {
  redis::request req;
  req.push("XRANGE", stream, id, id);
  redis::response<std::vector<std::pair<std::string, std::vector<std::string>>>> resp;
  co_await redis.exec(req, resp);
  stream_fields out;
  const auto& entries = std::get<0>(resp).value();
  if (!entries.empty()) {
    const auto& f = entries.front().second;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      out.emplace_back(f[i], f[i + 1]);
    }
  }
  co_return out;
}

asio::awaitable<std::vector<std::string>> stream_ids(redis::client& redis, std::string stream) {
  redis::request req;
  req.push("XRANGE", stream, "-", "+");
  redis::response<std::vector<std::pair<std::string, std::vector<std::string>>>> resp;
  co_await redis.exec(req, resp);
  std::vector<std::string> ids;
  for (const auto& e : std::get<0>(resp).value()) {
    ids.push_back(e.first);
  }
  co_return ids;
}

stream_fields dead_letter_fields(const std::string& source_stream, const std::string& source_id,
                                 const std::string& group, const std::string& consumer,
                                 unsigned deliveries, const std::string& reason, long long at_ms,
                                 const stream_fields& original) {
  namespace f = stream::dead_letter_field;
  stream_fields out{{std::string(f::source_stream), source_stream},
                    {std::string(f::source_id), source_id},
                    {std::string(f::group), group},
                    {std::string(f::consumer), consumer},
                    {std::string(f::deliveries), std::to_string(deliveries)},
                    {std::string(f::reason), reason},
                    {std::string(f::at_ms), std::to_string(at_ms)}};
  out.insert(out.end(), original.begin(), original.end());
  return out;
}

}  // namespace corvo::test
