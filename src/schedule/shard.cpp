#include <corvo/schedule/shard.hpp>

namespace corvo::schedule {

std::uint32_t fnv1a_32(std::string_view id) noexcept {
  std::uint32_t hash = 2166136261u;
  for (const char c : id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 16777619u;
  }
  return hash;
}

unsigned shard_of(std::string_view id, unsigned shards) noexcept {
  if (shards <= 1) {
    return 0;
  }
  return static_cast<unsigned>(fnv1a_32(id) % shards);
}

}  // namespace corvo::schedule
