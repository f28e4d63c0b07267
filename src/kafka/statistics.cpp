#include <corvo/kafka/statistics.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace corvo::kafka {
namespace {

namespace json = boost::json;

std::optional<std::int64_t> integer_of(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

}  // namespace

std::optional<topic_health> health_of(std::string_view statistics_json, std::string_view topic) {
  boost::system::error_code ec;
  const auto doc = json::parse(statistics_json, ec);
  if (ec || !doc.is_object()) {
    return std::nullopt;
  }
  const auto& root = doc.get_object();
  const auto* topics = root.if_contains("topics");
  const auto* brokers = root.if_contains("brokers");
  if (topics == nullptr || !topics->is_object() || brokers == nullptr || !brokers->is_object()) {
    return std::nullopt;
  }
  const auto* entry = topics->get_object().if_contains(topic);
  if (entry == nullptr || !entry->is_object()) {
    return std::nullopt;
  }
  const auto* partitions = entry->get_object().if_contains("partitions");
  if (partitions == nullptr || !partitions->is_object()) {
    return std::nullopt;
  }
  // Broker node id -> connection up.
  std::map<std::int64_t, bool> up;
  for (const auto& [name, broker] : brokers->get_object()) {
    if (!broker.is_object()) continue;
    const auto& b = broker.get_object();
    const auto id = integer_of(b, "nodeid");
    const auto* state = b.if_contains("state");
    if (!id || *id < 0 || state == nullptr || !state->is_string()) continue;
    const bool connected = state->get_string() == "UP" || state->get_string() == "UPDATE";
    up[*id] = up[*id] || connected;
  }
  topic_health health;
  for (const auto& [id, partition] : partitions->get_object()) {
    if (!partition.is_object()) continue;
    const auto number = integer_of(partition.get_object(), "partition");
    if (!number || *number < 0) continue;  // -1 is librdkafka's unassigned-partition queue
    ++health.partitions;
    const auto leader = integer_of(partition.get_object(), "leader");
    if (leader && *leader >= 0) {
      const auto it = up.find(*leader);
      if (it != up.end() && it->second) ++health.leaders_up;
    }
  }
  if (health.partitions == 0) {
    return std::nullopt;
  }
  return health;
}

}  // namespace corvo::kafka
