#include "reply_tree.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace corvo::stream::detail {
namespace {

using redis::resp3::type;

bool aggregate(type t) {
  return t == type::array || t == type::map || t == type::set || t == type::push ||
         t == type::attribute;
}

// Builds the subtree rooted at nodes[i]; advances i past it.
reply_tree build(const std::vector<redis::resp3::node>& nodes, std::size_t& i) {
  reply_tree t;
  const auto& n = nodes.at(i++);
  t.type = n.data_type;
  if (!aggregate(n.data_type)) {
    t.text = std::string(redis::resp3::verbatim_text(n));
    return t;
  }
  const bool pairs = n.data_type == type::map || n.data_type == type::attribute;
  const std::size_t children = pairs ? 2 * n.aggregate_size : n.aggregate_size;
  t.items.reserve(std::min<std::size_t>(children, 4096));
  for (std::size_t c = 0; c < children && i < nodes.size(); ++c) {
    // An attribute describes the value after it: skip it.
    while (i < nodes.size() && nodes[i].data_type == type::attribute) {
      build(nodes, i);
    }
    if (i < nodes.size()) {
      t.items.push_back(build(nodes, i));
    }
  }
  return t;
}

}  // namespace

bool reply_tree::is_aggregate() const noexcept {
  return aggregate(type);
}

const reply_tree* reply_tree::find(std::string_view key) const {
  for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
    if (!items[i].is_aggregate() && items[i].text == key) {
      return &items[i + 1];
    }
  }
  return nullptr;
}

const std::string& reply_tree::text_of(std::string_view key) const {
  const auto* v = find(key);
  if (v == nullptr || v->is_aggregate()) {
    throw std::runtime_error("unexpected Redis reply: no '" + std::string(key) + "'");
  }
  return v->text;
}

std::optional<std::uint64_t> reply_tree::number_of(std::string_view key) const {
  const auto* v = find(key);
  if (v == nullptr || v->is_null()) {
    return std::nullopt;
  }
  const auto n = to_unsigned(v->text);
  if (!n) {
    throw std::runtime_error("unexpected Redis reply: '" + std::string(key) +
                             "' is not a number: " + v->text);
  }
  return n;
}

std::optional<std::int64_t> reply_tree::signed_number_of(std::string_view key) const {
  const auto* v = find(key);
  if (v == nullptr || v->is_null()) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(v->text.data(), v->text.data() + v->text.size(), n);
  if (ec != std::errc{} || end != v->text.data() + v->text.size()) {
    throw std::runtime_error("unexpected Redis reply: '" + std::string(key) +
                             "' is not a number: " + v->text);
  }
  return n;
}

reply_tree to_tree(const std::vector<redis::resp3::node>& nodes) {
  if (nodes.empty()) {
    return {};
  }
  std::size_t i = 0;
  return build(nodes, i);
}

std::optional<std::uint64_t> to_unsigned(std::string_view text) {
  std::uint64_t n = 0;
  if (text.empty() || text.front() == '-' || text.front() == '+') {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return n;
}

}  // namespace corvo::stream::detail
