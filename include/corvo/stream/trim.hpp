#pragma once
// Safe trimming of a Redis stream: by age (or below an id) with XTRIM MINID, but never past
// an entry a consumer group still needs.
//
//   stream::trim_options by_age;
//   by_age.max_age = std::chrono::hours(24 * 60);
//   auto r = co_await stream::safe_trim(redis, "orders", by_age);
//   // r.trimmed entries removed; r.min_id is what was kept from; r.limited_by says why
//
// The rule. The requested bound is `now - max_age` (on the Redis server's clock, the clock
// that made the ids) or `min_id`. It is lowered, per consumer group of the stream, to
//   - the group's oldest pending entry (delivered, not acknowledged): trimming it would
//     lose it (the consumer's XAUTOCLAIM finds it gone, nobody handles it);
//   - unless `trim_undelivered`: the first entry after the group's last-delivered-id, i.e.
//     the entries the group has not read yet (a lagging or stopped group still gets them).
// Entries below the final bound are removed with exact `XTRIM key MINID bound`.
//
// Race-free: one Lua script reads the groups (XINFO GROUPS, XPENDING) and trims; no
// consumer can read, claim or acknowledge between the two. (Done from the client in two
// steps, an entry delivered after the XPENDING could be trimmed while pending.)
//
// Failure: a missing stream or a key of another type throws admin_error::no_such_stream /
// wrong_type; a bad min_id admin_error::bad_id; Redis errors propagate.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/stream/admin_error.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace corvo::stream {

struct trim_options {
  /// Remove entries older than this (by id time, server clock). Exactly one of max_age and
  /// min_id must be set.
  std::optional<std::chrono::milliseconds> max_age;
  /// Remove entries with an id below this.
  std::optional<std::string> min_id;
  /// Also remove entries a group has not read yet (beyond its last-delivered-id). Off by
  /// default: a group that is behind (or stopped) would silently never see them.
  bool trim_undelivered = false;
};

/// Why the bound was lowered below the requested one.
enum class trim_limit {
  none,         ///< the requested bound was used
  pending,      ///< a group's oldest pending entry
  undelivered,  ///< a group's first entry not yet delivered
};

std::string_view to_string(trim_limit l) noexcept;

struct trim_result {
  std::string stream;
  /// Entries removed.
  std::uint64_t trimmed = 0;
  /// The bound asked for (from max_age or min_id).
  std::string requested_min_id;
  /// The bound used: entries below it were removed, it and later ones kept.
  std::string min_id;
  trim_limit limited_by = trim_limit::none;
  /// The group that lowered the bound (empty with trim_limit::none).
  std::string limiting_group;
  /// Entries left.
  std::uint64_t length = 0;
};

/// Trims `stream` per `options` (see the file comment). Throws std::invalid_argument when
/// neither or both of max_age and min_id are set.
asio::awaitable<trim_result> safe_trim(redis::client& redis, std::string stream,
                                       trim_options options);

}  // namespace corvo::stream
