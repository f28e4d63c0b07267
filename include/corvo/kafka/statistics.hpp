#pragma once
// Readings from librdkafka's statistics JSON (STATISTICS.md), emitted every
// `statistics.interval.ms` (see producer_options::on_statistics).

#include <cstddef>
#include <optional>
#include <string_view>

namespace corvo::kafka {

/// Whether `topic` can take messages now, by the leaders of its partitions.
struct topic_health {
  std::size_t partitions = 0;  ///< partitions the client knows
  std::size_t leaders_up = 0;  ///< of which the leader broker's connection is up

  bool writable() const noexcept { return partitions > 0 && leaders_up == partitions; }
};

/// Reads the health of `topic` from one statistics JSON document: a partition counts as up
/// when its leader's broker connection is in state UP (or UPDATE). nullopt when the document
/// does not know the topic's partitions yet (nothing produced to it so far) or is not
/// statistics JSON.
std::optional<topic_health> health_of(std::string_view statistics_json, std::string_view topic);

}  // namespace corvo::kafka
