#pragma once
// Configuration of Kafka clients: librdkafka properties, passed through as strings.
//
// In a corvo configuration file the `kafka` section holds librdkafka properties under their
// own names; `producer` and `consumer` sub-sections override them for one kind of client:
//
//   { "kafka": {
//       "bootstrap.servers": "embedded:3",          // or "broker1:9092,broker2:9092"
//       "client.id": "billing",
//       "producer": { "linger.ms": 1 },
//       "consumer": { "group.id": "billing", "session.timeout.ms": 6000 },
//       "corvo.embedded.topics": ["tasks:8", "tasks.dlq:1"] } }
//
// Values may be strings, numbers or booleans (converted to librdkafka's strings) or arrays
// (joined with commas). Nested objects spell dotted names: {"linger": {"ms": 1}} is
// `linger.ms`, which is what environment overrides produce (CORVO_KAFKA__LINGER__MS=1); when
// both spellings are present the nested one (the override) wins.
//
// `bootstrap.servers = embedded:N` ("embedded" alone means 3 brokers) runs the clients
// against an in-process corvo::kafka::embedded_cluster with N brokers, shared by every
// client of the process that names the same N and kept until the process exits. The
// `corvo.embedded.topics` list ("name:partitions") is created in it on first use. Keys that
// start with `corvo.` are corvo's own and never reach librdkafka.
//
// A property librdkafka rejects is reported when a client is created, as a
// corvo::config_error naming the key (`kafka.consumer.session.timeout.ms`) and librdkafka's
// reason.

#include <corvo/core/config.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::kafka {

class embedded_cluster;

/// Which kind of client a set of properties is for.
enum class client_role { producer, consumer };

std::string_view to_string(client_role role) noexcept;

class client_config {
 public:
  /// No properties (librdkafka defaults; bootstrap.servers must still be set).
  client_config() = default;

  /// Only `bootstrap.servers` set.
  explicit client_config(std::string bootstrap_servers);

  /// The properties of `section` of `cfg` (see the header comment). A missing section gives
  /// an empty client_config. Throws config_error for a value that is an object where a
  /// property is expected inside a role section, or null.
  static client_config from(const corvo::config& cfg, std::string_view section = "kafka");

  /// Sets a property for every client.
  client_config& set(std::string_view name, std::string value);
  /// Sets a property for one kind of client (overrides the common value).
  client_config& set(client_role role, std::string_view name, std::string value);

  /// The common value of a property, if set.
  std::optional<std::string> get(std::string_view name) const;
  /// The value a client of `role` gets: its override, else the common value.
  std::optional<std::string> get(client_role role, std::string_view name) const;

  /// The properties a client of `role` is created with: common values, then the role's
  /// overrides; properties that only apply to the other role and `corvo.*` keys are left
  /// out (librdkafka would warn about them).
  std::map<std::string, std::string> properties(client_role role) const;

  /// The configuration key a property came from, for error messages
  /// ("kafka.consumer.session.timeout.ms").
  std::string key_of(client_role role, std::string_view name) const;

  /// The broker count when `bootstrap.servers` is "embedded" (3) or "embedded:N".
  /// Throws config_error for "embedded:" followed by something other than 1..64.
  std::optional<std::size_t> embedded_brokers() const;

  /// `corvo.embedded.topics` parsed as (name, partitions); "name" alone means 1 partition.
  /// Throws config_error for a malformed entry.
  std::vector<std::pair<std::string, int>> embedded_topics() const;

  /// For an embedded configuration, the shared in-process cluster (started on first use,
  /// with `corvo.embedded.topics` created); null otherwise.
  std::shared_ptr<embedded_cluster> embedded() const;

 private:
  using property_map = std::map<std::string, std::string, std::less<>>;
  property_map common_;
  property_map producer_;
  property_map consumer_;
  std::string section_;  // e.g. "kafka", for key_of()
};

}  // namespace corvo::kafka
