#pragma once
// A Redis reply as a small tree, for the admin calls whose replies are nested maps and
// arrays (XINFO, XPENDING, XRANGE). Built from the generic node list of an adapter.

#include <corvo/redis/resp3/node.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::stream::detail {

struct reply_tree {
  redis::resp3::type type = redis::resp3::type::null;
  /// A leaf's text.
  std::string text;
  /// An aggregate's elements (a map's flattened: key, value, key, value, ...).
  std::vector<reply_tree> items;

  bool is_null() const noexcept { return type == redis::resp3::type::null; }
  bool is_aggregate() const noexcept;

  /// For a map (or a flat key/value array): the value of `key`, or null.
  const reply_tree* find(std::string_view key) const;
  /// The text of `key`'s value; throws std::runtime_error naming the key when missing.
  const std::string& text_of(std::string_view key) const;
  /// The unsigned integer at `key`; nullopt when missing or null. Throws on a non-number.
  std::optional<std::uint64_t> number_of(std::string_view key) const;
  std::optional<std::int64_t> signed_number_of(std::string_view key) const;
};

/// The tree of one reply (`nodes` as filled by the std::vector<resp3::node> adapter).
reply_tree to_tree(const std::vector<redis::resp3::node>& nodes);

/// Parses an unsigned decimal; nullopt for anything else.
std::optional<std::uint64_t> to_unsigned(std::string_view text);

}  // namespace corvo::stream::detail
