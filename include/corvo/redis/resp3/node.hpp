#pragma once
// A parsed RESP3 node, as a view into the read buffer (`node_view`, what the parser emits)
// or as an owning copy (`node`, what the generic adapter stores).
//
// A message is emitted as its nodes in pre-order: an aggregate node comes first, carrying
// its announced `aggregate_size`, then its children at `depth + 1`. A map announces pairs,
// so it is followed by 2 * aggregate_size children (key, value, key, value, ...). For leaves
// `aggregate_size` is 1 and `value` is the payload without type byte, length or CRLF (for
// a verbatim string it includes the "txt:" prefix; see `verbatim_text`). Attributes are
// emitted like maps; the value they describe follows them at the same depth.

#include <corvo/redis/resp3/type.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace corvo::redis::resp3 {

template <class String>
struct basic_node {
  type data_type = type::null;
  /// Elements announced by an aggregate (pairs for maps/attributes); 1 for leaves.
  std::size_t aggregate_size = 1;
  /// Number of aggregates enclosing the node; the root of a message has depth 0.
  std::size_t depth = 0;
  /// Payload of a leaf; empty for aggregates and null.
  String value{};

  friend bool operator==(const basic_node&, const basic_node&) = default;
};

/// A node whose value points into the parsed buffer: valid while that buffer is.
using node_view = basic_node<std::string_view>;
/// A node that owns its value.
using node = basic_node<std::string>;

/// For a verbatim string, the text after the "xxx:" format prefix; other values unchanged.
template <class String>
std::string_view verbatim_text(const basic_node<String>& n) noexcept {
  std::string_view v = n.value;
  if (n.data_type == type::verbatim_string && v.size() >= 4) {
    v.remove_prefix(4);
  }
  return v;
}

/// For a verbatim string, its three-character format ("txt", "mkd"); empty otherwise.
template <class String>
std::string_view verbatim_format(const basic_node<String>& n) noexcept {
  std::string_view v = n.value;
  if (n.data_type == type::verbatim_string && v.size() >= 4) {
    return v.substr(0, 3);
  }
  return {};
}

}  // namespace corvo::redis::resp3
