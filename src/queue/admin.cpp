#include <boost/json/parse.hpp>
#include <corvo/queue/admin.hpp>

#include "scripts.hpp"

namespace corvo::queue {

dead_letter parse_dead_letter(std::string_view entry) {
  const auto newline = entry.find('\n');
  if (newline == std::string_view::npos) {
    throw std::invalid_argument("not a queue dead letter (no metadata line)");
  }
  boost::system::error_code ec;
  const auto meta = boost::json::parse(entry.substr(0, newline), ec);
  if (ec || !meta.is_object()) {
    throw std::invalid_argument("not a queue dead letter (metadata is not a JSON object)");
  }
  const auto& o = meta.get_object();
  dead_letter d;
  if (const auto* r = o.if_contains("reason"); r && r->is_string()) {
    d.reason = std::string(r->get_string());
  }
  if (const auto* c = o.if_contains("consumer"); c && c->is_string()) {
    d.consumer = std::string(c->get_string());
  }
  if (const auto* a = o.if_contains("at_ms"); a && a->is_number()) {
    d.at_ms = a->to_number<std::int64_t>();
  }
  const auto envelope = decode_envelope(entry.substr(newline + 1));
  d.id = std::string(envelope.id);
  d.attempts = envelope.attempts;
  if (const auto* a = o.if_contains("attempts"); a && a->is_number()) {
    d.attempts = a->to_number<std::uint32_t>();
  }
  d.body = std::string(envelope.body);
  return d;
}

asio::awaitable<queue_info> inspect(redis::client& redis, std::string queue) {
  const queue_keys keys(std::move(queue));
  redis::request req;
  req.push("LLEN", keys.queue());
  req.push("LLEN", keys.dead());
  req.push("ZRANGE", keys.consumers(), 0, -1, "WITHSCORES");
  req.push("ZCARD", keys.delayed());
  redis::response<long long, long long, std::vector<std::pair<std::string, double>>, long long>
      resp;
  co_await redis.exec(req, resp);
  queue_info info;
  info.name = keys.queue();
  info.depth = static_cast<std::size_t>(std::get<0>(resp).value());
  info.dead = static_cast<std::size_t>(std::get<1>(resp).value());
  info.delayed = static_cast<std::size_t>(std::get<3>(resp).value());
  for (const auto& [id, score] : std::get<2>(resp).value()) {
    consumer_info c;
    c.id = id;
    c.last_heartbeat_ms = static_cast<std::int64_t>(score);
    redis::request per;
    per.push("LLEN", keys.processing(id));
    per.push("PTTL", keys.heartbeat(id));
    redis::response<long long, long long> counts;
    co_await redis.exec(per, counts);
    c.processing = static_cast<std::size_t>(std::get<0>(counts).value());
    const auto ttl = std::get<1>(counts).value();
    c.alive = ttl >= 0 || ttl == -1;  // -1: a key without TTL (set by hand) counts as alive
    c.heartbeat_ttl_ms = ttl >= 0 ? ttl : -1;
    info.consumers.push_back(std::move(c));
  }
  std::sort(info.consumers.begin(), info.consumers.end(),
            [](const consumer_info& a, const consumer_info& b) { return a.id < b.id; });
  co_return info;
}

asio::awaitable<std::vector<dead_letter>> dead_letters(redis::client& redis, std::string queue,
                                                       std::size_t offset, std::size_t limit) {
  std::vector<dead_letter> out;
  if (limit == 0) {
    co_return out;
  }
  const queue_keys keys(std::move(queue));
  redis::request req;
  req.push("LRANGE", keys.dead(), offset, offset + limit - 1);
  redis::response<std::vector<std::string>> resp;
  co_await redis.exec(req, resp);
  for (const auto& entry : std::get<0>(resp).value()) {
    try {
      out.push_back(parse_dead_letter(entry));
    } catch (const std::invalid_argument&) {
      dead_letter d;  // written by something else: shown as it is
      d.reason = "(not a corvo dead letter)";
      d.body = entry;
      out.push_back(std::move(d));
    }
  }
  co_return out;
}

asio::awaitable<std::size_t> replay_dead(redis::client& redis, std::string queue, std::string id) {
  const queue_keys keys(std::move(queue));
  std::vector<std::string> script_keys{keys.dead(), keys.queue()};
  std::vector<std::string> args{std::move(id)};
  redis::response<long long> resp;
  co_await detail::replay.exec(redis, std::move(script_keys), std::move(args), resp);
  co_return static_cast<std::size_t>(std::get<0>(resp).value());
}

asio::awaitable<std::size_t> purge_dead(redis::client& redis, std::string queue, std::string id) {
  const queue_keys keys(std::move(queue));
  std::vector<std::string> script_keys{keys.dead()};
  std::vector<std::string> args{std::move(id)};
  redis::response<long long> resp;
  co_await detail::purge.exec(redis, std::move(script_keys), std::move(args), resp);
  co_return static_cast<std::size_t>(std::get<0>(resp).value());
}

}  // namespace corvo::queue
