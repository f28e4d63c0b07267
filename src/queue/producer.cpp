#include <boost/json/serialize.hpp>
#include <corvo/queue/producer.hpp>
#include <cstdio>
#include <random>

namespace corvo::queue {

producer::producer(redis::client& redis, std::string queue)
    : redis_(redis), keys_(std::move(queue)) {
  std::random_device seed;
  std::mt19937_64 random((static_cast<std::uint64_t>(seed()) << 32) ^ seed());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
  prefix_ = std::string(text, 12) + ".";
}

std::string producer::next_id() {
  return prefix_ + std::to_string(counter_++);
}

std::string producer::typed_body(std::string_view type, const boost::json::value& payload) {
  boost::json::object body;
  body["type"] = type;
  body["payload"] = payload;
  return boost::json::serialize(body);
}

asio::awaitable<std::string> producer::push_raw(std::string body) {
  auto id = next_id();
  redis::request req;
  req.push("LPUSH", keys_.queue(), encode_envelope(id, 0, body));
  redis::response<long long> pushed;
  co_await redis_.exec(req, pushed);
  std::get<0>(pushed).value();  // throws the server's error (WRONGTYPE, OOM, ...)
  co_return id;
}

asio::awaitable<std::vector<std::string>> producer::push_raw_batch(
    std::vector<std::string> bodies) {
  std::vector<std::string> ids;
  std::vector<std::string> values;
  ids.reserve(bodies.size());
  values.reserve(bodies.size());
  for (const auto& body : bodies) {
    ids.push_back(next_id());
    values.push_back(encode_envelope(ids.back(), 0, body));
  }
  if (!values.empty()) {
    redis::request req;
    req.push("LPUSH", keys_.queue(), values);
    redis::response<long long> pushed;
    co_await redis_.exec(req, pushed);
    std::get<0>(pushed).value();
  }
  co_return ids;
}

}  // namespace corvo::queue
