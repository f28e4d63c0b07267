#include <corvo/kafka/config.hpp>
#include <corvo/kafka/embedded_cluster.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>

namespace corvo::kafka {
namespace {

namespace json = boost::json;

// Properties that only one kind of client understands (CONFIGURATION.md, librdkafka 2.0.2,
// "C/P" column). The other kind of client would log a warning for each of them.
constexpr std::array consumer_only{
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "check.crcs",
    "consume.callback.max.messages",
    "coordinator.query.interval.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "group.id",
    "group.instance.id",
    "group.protocol.type",
    "heartbeat.interval.ms",
    "isolation.level",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "partition.assignment.strategy",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "session.timeout.ms",
};
constexpr std::array producer_only{
    "acks",
    "batch.num.messages",
    "batch.size",
    "compression.codec",
    "compression.level",
    "compression.type",
    "delivery.report.only.error",
    "delivery.timeout.ms",
    "enable.gapless.guarantee",
    "enable.idempotence",
    "linger.ms",
    "message.send.max.retries",
    "message.timeout.ms",
    "partitioner",
    "produce.offset.report",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queuing.strategy",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "sticky.partitioning.linger.ms",
    "transaction.timeout.ms",
    "transactional.id",
};

template <std::size_t N>
bool contains(const std::array<const char*, N>& names, std::string_view name) {
  return std::any_of(names.begin(), names.end(),
                     [&](const char* candidate) { return name == candidate; });
}

bool belongs_to_other_role(client_role role, std::string_view name) {
  return role == client_role::producer ? contains(consumer_only, name)
                                       : contains(producer_only, name);
}

std::string scalar_text(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    default:
      return json::serialize(v);
  }
}

std::string value_text(const std::string& key, const json::value& v) {
  if (v.is_array()) {
    std::string joined;
    for (const auto& item : v.get_array()) {
      if (item.is_object() || item.is_array() || item.is_null()) {
        throw config_error(
            key, "key '" + key + "' must be a list of scalar values, got " + json::serialize(v));
      }
      if (!joined.empty()) {
        joined += ',';
      }
      joined += scalar_text(item);
    }
    return joined;
  }
  if (v.is_null()) {
    throw config_error(key, "key '" + key + "' is null; remove it or give it a value");
  }
  return scalar_text(v);
}

// Flattens `object` into dotted property names. Scalars of a level are taken before its
// nested objects, so a nested spelling (an environment override) replaces a flat one.
void flatten(const json::object& object, const std::string& prefix, const std::string& key_prefix,
             std::map<std::string, std::string, std::less<>>& out) {
  for (const auto& entry : object) {
    if (!entry.value().is_object()) {
      const std::string name = prefix + std::string(entry.key());
      out[name] = value_text(key_prefix + name, entry.value());
    }
  }
  for (const auto& entry : object) {
    if (entry.value().is_object()) {
      flatten(entry.value().get_object(), prefix + std::string(entry.key()) + ".", key_prefix, out);
    }
  }
}

}  // namespace

std::string_view to_string(client_role role) noexcept {
  return role == client_role::producer ? "producer" : "consumer";
}

client_config::client_config(std::string bootstrap_servers) {
  common_["bootstrap.servers"] = std::move(bootstrap_servers);
}

client_config client_config::from(const corvo::config& cfg, std::string_view section) {
  client_config result;
  result.section_ = std::string(section);
  if (!cfg.contains(section)) {
    return result;
  }
  const auto value = cfg.get<json::value>(section);
  const std::string key_prefix = std::string(section) + ".";
  if (!value.is_object()) {
    throw config_error(std::string(section), "key '" + std::string(section) +
                                                 "' must be an object of librdkafka "
                                                 "properties, got " +
                                                 json::serialize(value));
  }
  json::object common = value.get_object();
  for (const auto role : {client_role::producer, client_role::consumer}) {
    const auto it = common.find(to_string(role));
    if (it == common.end()) {
      continue;
    }
    const std::string role_key = key_prefix + std::string(to_string(role));
    if (!it->value().is_object()) {
      throw config_error(role_key, "key '" + role_key + "' must be an object, got " +
                                       json::serialize(it->value()));
    }
    auto& target = role == client_role::producer ? result.producer_ : result.consumer_;
    flatten(it->value().get_object(), "", role_key + ".", target);
    common.erase(it);
  }
  flatten(common, "", key_prefix, result.common_);
  return result;
}

client_config& client_config::set(std::string_view name, std::string value) {
  common_[std::string(name)] = std::move(value);
  return *this;
}

client_config& client_config::set(client_role role, std::string_view name, std::string value) {
  auto& target = role == client_role::producer ? producer_ : consumer_;
  target[std::string(name)] = std::move(value);
  return *this;
}

std::optional<std::string> client_config::get(std::string_view name) const {
  if (const auto it = common_.find(name); it != common_.end()) {
    return it->second;
  }
  return std::nullopt;
}

std::optional<std::string> client_config::get(client_role role, std::string_view name) const {
  const auto& overrides = role == client_role::producer ? producer_ : consumer_;
  if (const auto it = overrides.find(name); it != overrides.end()) {
    return it->second;
  }
  return get(name);
}

std::map<std::string, std::string> client_config::properties(client_role role) const {
  std::map<std::string, std::string> result;
  const auto take = [&](const property_map& from) {
    for (const auto& [name, value] : from) {
      if (name.rfind("corvo.", 0) == 0 || belongs_to_other_role(role, name)) {
        continue;
      }
      result[name] = value;
    }
  };
  take(common_);
  take(role == client_role::producer ? producer_ : consumer_);
  return result;
}

std::string client_config::key_of(client_role role, std::string_view name) const {
  const auto& overrides = role == client_role::producer ? producer_ : consumer_;
  std::string key = section_.empty() ? std::string{} : section_ + ".";
  if (overrides.find(name) != overrides.end()) {
    key += std::string(to_string(role)) + ".";
  }
  return key + std::string(name);
}

std::optional<std::size_t> client_config::embedded_brokers() const {
  const auto servers = get("bootstrap.servers");
  if (!servers) {
    return std::nullopt;
  }
  constexpr std::string_view word = "embedded";
  if (*servers == word) {
    return 3;
  }
  if (servers->rfind("embedded:", 0) != 0) {
    return std::nullopt;
  }
  const std::string_view count = std::string_view(*servers).substr(word.size() + 1);
  std::size_t brokers = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), brokers);
  if (ec != std::errc{} || end != count.data() + count.size() || brokers < 1 || brokers > 64) {
    const auto key = key_of(client_role::producer, "bootstrap.servers");
    throw config_error(key, "key '" + key +
                                "' must be host:port pairs, \"embedded\" or "
                                "\"embedded:N\" with N in 1..64, got \"" +
                                *servers + "\"");
  }
  return brokers;
}

std::vector<std::pair<std::string, int>> client_config::embedded_topics() const {
  std::vector<std::pair<std::string, int>> topics;
  const auto list = get("corvo.embedded.topics");
  if (!list) {
    return topics;
  }
  std::string_view rest = *list;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') {
      item.remove_prefix(1);
    }
    while (!item.empty() && item.back() == ' ') {
      item.remove_suffix(1);
    }
    if (item.empty()) {
      continue;
    }
    int partitions = 1;
    const auto colon = item.find(':');
    const std::string_view name = item.substr(0, colon);
    if (colon != std::string_view::npos) {
      const auto count = item.substr(colon + 1);
      const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), partitions);
      if (ec != std::errc{} || end != count.data() + count.size() || partitions < 1) {
        partitions = 0;
      }
    }
    if (name.empty() || partitions < 1) {
      const auto key = key_of(client_role::producer, "corvo.embedded.topics");
      throw config_error(key, "key '" + key +
                                  "' must list \"name\" or \"name:partitions\" "
                                  "entries, got \"" +
                                  std::string(item) + "\"");
    }
    topics.emplace_back(std::string(name), partitions);
  }
  return topics;
}

std::shared_ptr<embedded_cluster> client_config::embedded() const {
  const auto brokers = embedded_brokers();
  if (!brokers) {
    return nullptr;
  }
  auto cluster = shared_embedded_cluster(*brokers);
  const int replication = static_cast<int>(std::min<std::size_t>(*brokers, 3));
  for (const auto& [name, partitions] : embedded_topics()) {
    cluster->ensure_topic(name, partitions, replication);
  }
  return cluster;
}

}  // namespace corvo::kafka
