#pragma once
// The dead-letter stream of a Redis stream: its key and the layout of its entries. Shared by
// the consumer (which writes dead letters), the admin calls and `corvo stream dlq`.
//
// Key: the dead letters of stream S live in one stream in the same hash slot as S, so the
// consumer can append the dead letter and XACK the original in one script on a cluster:
//   - S has a hash tag ("{orders}:events"): S + ":dlq"        ("{orders}:events:dlq");
//   - S has none ("orders"):                "{" + S + "}:dlq"  ("{orders}:dlq"), whose tag
//     "orders" hashes like the key "orders" itself.
//
// Entry: the first `metadata_fields` field/value pairs are the metadata below, in this
// order; the pairs after them are the original entry's fields and values, unchanged. Replay
// appends those original pairs to `source_stream` (a new id); purge deletes dead letters.
// Metadata is positional (not recognised by name), so an original field named like a
// metadata field is carried through untouched.

#include <array>
#include <string>
#include <string_view>

namespace corvo::stream {

/// True when `key` contains a Redis Cluster hash tag: a '{' followed later by a '}' with at
/// least one character between them (the rule of CLUSTER KEYSLOT).
inline bool has_hash_tag(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) {
    return false;
  }
  const auto close = key.find('}', open + 1);
  return close != std::string_view::npos && close > open + 1;
}

/// The default dead-letter stream of `stream` (same hash slot; see the header comment).
inline std::string dead_letter_key(std::string_view stream) {
  std::string key;
  if (has_hash_tag(stream)) {
    key.append(stream).append(":dlq");
  } else {
    key.append("{").append(stream).append("}:dlq");
  }
  return key;
}

/// Metadata field names of a dead-letter entry, in their order at the start of the entry.
namespace dead_letter_field {
inline constexpr std::string_view source_stream = "dlq.stream";   ///< the stream it came from
inline constexpr std::string_view source_id = "dlq.id";           ///< its id there
inline constexpr std::string_view group = "dlq.group";            ///< the consumer group
inline constexpr std::string_view consumer = "dlq.consumer";      ///< the last consumer
inline constexpr std::string_view deliveries = "dlq.deliveries";  ///< delivery count (decimal)
inline constexpr std::string_view reason = "dlq.reason";          ///< why (human-readable)
inline constexpr std::string_view at_ms = "dlq.at_ms";  ///< Unix time of dead-lettering, ms
}  // namespace dead_letter_field

/// The metadata fields in entry order.
inline constexpr std::array<std::string_view, 7> dead_letter_metadata = {
    dead_letter_field::source_stream, dead_letter_field::source_id,  dead_letter_field::group,
    dead_letter_field::consumer,      dead_letter_field::deliveries, dead_letter_field::reason,
    dead_letter_field::at_ms};

/// Number of leading field/value pairs of a dead-letter entry that are metadata.
inline constexpr std::size_t metadata_fields = dead_letter_metadata.size();

}  // namespace corvo::stream
