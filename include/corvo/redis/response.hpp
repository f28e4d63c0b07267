#pragma once
// What the caller declares it expects back from a request, one slot per reply.
//
//   request req;
//   req.push("SET", "k", "v");
//   req.push("GET", "k");
//   req.push("HGETALL", "h");
//   response<ignore_t, std::optional<std::string>, std::map<std::string, std::string>> resp;
//   co_await conn.async_exec(req, resp);
//   if (auto& v = std::get<1>(resp); v.has_value() && *v) use(**v);
//
// - `response<Ts...>` is `std::tuple<result<Ts>...>`: element i receives reply i, each
//   with its own error (see result.hpp). Supported Ts are listed in adapter.hpp: strings,
//   integers, doubles, bool, std::optional, std::vector, sets, maps, vectors of pairs,
//   std::pair/std::tuple for fixed-shape arrays, `ignore_t`, `std::vector<resp3::node>`
//   (the reply as a tree), and `result<T>` nested to keep an element's error local.
// - `generic_response` takes any number of replies as owning nodes, in order, each reply's
//   root at depth 0, error replies and attributes included as nodes. Handy for pushes
//   and tools.
// - `ignore` discards every reply, errors included.

#include <corvo/redis/resp3/node.hpp>
#include <corvo/redis/result.hpp>
#include <optional>
#include <tuple>
#include <vector>

namespace corvo::redis {

/// A slot that keeps nothing but whether the reply was an error.
struct ignore_t {
  friend bool operator==(ignore_t, ignore_t) = default;
};
inline constexpr ignore_t ignore{};

template <class... Ts>
using response = std::tuple<result<Ts>...>;

using generic_response = std::vector<resp3::node>;

/// The error of the first failed slot of a response, if any.
template <class... Ts>
std::optional<reply_error> first_error(const std::tuple<result<Ts>...>& r) {
  std::optional<reply_error> found;
  std::apply(
      [&found](const auto&... slot) {
        (void)((slot.has_error() ? (found = slot.error(), true) : false) || ...);
      },
      r);
  return found;
}

}  // namespace corvo::redis
