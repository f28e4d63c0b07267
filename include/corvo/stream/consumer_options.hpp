#pragma once
// Options of a stream consumer (consumer.hpp), and how they are read from configuration.

#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::stream {

struct consumer_options {
  /// The consumer group (required).
  std::string group;
  /// The streams the group reads (at least one). Each stream gets its own reader on its own
  /// dedicated connection (on a cluster the streams may live on different masters).
  std::vector<std::string> streams;
  /// This consumer's name in the group; empty: "<hostname>-<pid>" (default_consumer_name()).
  /// Keep it stable across restarts of one process slot to pick up its own pending entries.
  std::string consumer;
  /// Where a group starts when the consumer creates it (XGROUP CREATE … MKSTREAM), and
  /// again when it re-creates it after NOGROUP: "0" = the whole stream, "$" = only new ones.
  std::string start_id = "0";
  /// Most entries one XREADGROUP returns (COUNT).
  std::size_t batch = 256;
  /// How long one XREADGROUP blocks waiting for new entries (BLOCK). Cancellation does not
  /// wait for it.
  std::chrono::milliseconds block{2000};
  /// Most entries taken from Redis and not finished yet (running, waiting for their key, or
  /// waiting to retry). Reading pauses while this many are held (back-pressure).
  std::size_t max_in_flight = 64;
  /// Entries with the same `key` field run one at a time, in stream order (per stream).
  bool ordered_by_key = false;
  /// An entry pending (unacknowledged) longer than this in any consumer is taken over by
  /// XAUTOCLAIM. Must exceed the longest handler run, or a slow run is handed to another
  /// consumer while it still runs.
  std::chrono::milliseconds min_idle{30'000};
  /// How often the pending entries of the group are scanned for idle ones (XAUTOCLAIM, from
  /// where the last scan stopped until the cursor comes back to 0-0).
  std::chrono::milliseconds claim_interval{5'000};
  /// COUNT of one XAUTOCLAIM call.
  std::size_t claim_batch = 100;
  /// An entry delivered this many times without success is dead-lettered (the handler's
  /// last failure is the reason); one delivered more often (its consumers died while running
  /// it) is dead-lettered without running again.
  std::uint64_t max_deliveries = 5;
  /// Delay before retry n of a failed entry: from [0, min(max, initial·2^(n-1))].
  backoff_policy retry_backoff{std::chrono::milliseconds{100}, std::chrono::milliseconds{10'000}};
  /// Pause after a Redis error before the next attempt (reads, acks, claims).
  backoff_policy redis_retry{std::chrono::milliseconds{50}, std::chrono::milliseconds{2'000}};
  /// How long handlers in flight may take to finish when the consumer stops.
  std::chrono::milliseconds drain_timeout{10'000};
  /// Most ids in one XACK.
  std::size_t ack_batch = 1024;
  /// Other consumers of the group idle longer than this with no pending entries are removed
  /// (XGROUP DELCONSUMER, checked atomically in a script); 0 = never.
  std::chrono::milliseconds delete_idle_consumers_after{3'600'000};

  /// From the application configuration, below `section` (default "stream.consumer"); every
  /// field above under its own name, with `retry_backoff.initial|max` and
  /// `redis_retry.initial|max`; `streams` is a list or a comma-separated string. Unknown
  /// keys are rejected (config_error naming the key); so are a missing group or stream.
  static consumer_options from(const corvo::config& cfg,
                               std::string_view section = "stream.consumer");
};

/// "<hostname>-<pid>": stable for the life of the process, unique per host.
std::string default_consumer_name();

}  // namespace corvo::stream
