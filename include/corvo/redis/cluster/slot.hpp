#pragma once
// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
//
//   key_slot("user:1000")            == crc16("user:1000") % 16384
//   key_slot("{user1000}.following") == key_slot("user1000")        hash tag
//   key_slot("foo{}{bar}")           == crc16("foo{}{bar}") % 16384  empty tag: whole key
//   key_slot("foo{{bar}}zap")        == key_slot("{bar")             first '{' to first '}'
//   key_slot("foo{bar}{zap}")        == key_slot("bar")              only the first tag
//
// The rules are the server's (cluster.c keyHashSlot): the tag is what lies between the
// first '{' and the first '}' after it, when that is not empty. Shard channels (SSUBSCRIBE,
// SPUBLISH) hash the same way. Everything here is constexpr and allocation-free.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace corvo::redis {

/// Number of hash slots in a Redis Cluster.
inline constexpr std::uint16_t slot_count = 16384;

namespace detail {

constexpr std::array<std::uint16_t, 256> make_crc16_table() noexcept {
  std::array<std::uint16_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
    }
    table[i] = static_cast<std::uint16_t>(crc & 0xffff);
  }
  return table;
}

inline constexpr std::array<std::uint16_t, 256> crc16_table = make_crc16_table();

}  // namespace detail

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final XOR), the
/// checksum Redis Cluster hashes keys with. crc16("123456789") == 0x31C3.
constexpr std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (char c : bytes) {
    const auto byte = static_cast<std::uint8_t>(c);
    crc = static_cast<std::uint16_t>((crc << 8) ^ detail::crc16_table[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

/// The part of `key` that is hashed: the hash tag when the key has a non-empty one, else
/// the whole key.
constexpr std::string_view hash_tag(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) {
    return key;
  }
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) {
    return key;
  }
  return key.substr(open + 1, close - open - 1);
}

/// The cluster slot of a key (or shard channel), in [0, 16384).
constexpr std::uint16_t key_slot(std::string_view key) noexcept {
  return static_cast<std::uint16_t>(crc16(hash_tag(key)) & (slot_count - 1));
}

}  // namespace corvo::redis
