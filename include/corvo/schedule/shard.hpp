#pragma once
// Task id -> shard. Every store and every process must agree on it (a task's keys live in
// its shard), so it is a fixed function of the id's bytes, never std::hash (which may differ
// between standard libraries and builds).

#include <cstdint>
#include <string_view>

namespace corvo::schedule {

/// FNV-1a, 32 bits, over the bytes of `id`.
std::uint32_t fnv1a_32(std::string_view id) noexcept;

/// The shard of `id` among `shards`: fnv1a_32(id) % shards (0 when `shards` is 0 or 1).
unsigned shard_of(std::string_view id, unsigned shards) noexcept;

}  // namespace corvo::schedule
