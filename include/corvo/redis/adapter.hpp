#pragma once
// Response adapters: turn the nodes of one reply into the C++ value the caller declared in
// a `response<Ts...>` (see response.hpp), without undefined behaviour on any input.
//
// Supported slot types T (in `response<T...>` and nested in one another):
//   std::string          simple/bulk/verbatim string (without "txt:"), integer, double and
//                        big number as their text
//   integral types       integer, big number, or a string holding a decimal that fits T
//   floating point       double, integer, big number, or a string holding a number
//   bool                 boolean, or integer 0/1 (SISMEMBER, EXPIRE, ...)
//   std::optional<T>     null (`_`, `$-1`, `*-1`) -> nullopt, else T
//   std::vector<T>       array, set or push (a map is read flattened: k, v, k, v)
//   std::set, std::unordered_set of a leaf type (string or number)
//   std::map, std::unordered_map, std::vector<std::pair<K, V>> with a leaf key:
//                        a map, a flat array k, v, k, v (RESP2 style), or an array of
//                        2-element arrays (ZRANGE ... WITHSCORES in RESP3)
//   std::pair, std::tuple  an aggregate with exactly that many elements, each adapted
//   ignore_t             anything (only a server error is kept)
//   std::vector<resp3::node>  the reply as an owning node tree, root at depth 0
//   result<T>            nested: an error inside stays in that element instead of failing
//                        the whole reply (e.g. one failed command inside EXEC)
//
// Rules: a server error node anywhere a value is expected fails the slot with
// `error::server_error` and the server's text; null where no optional is declared gives
// `error::unexpected_null`; any other incompatible type gives `error::type_mismatch`.
// Attributes are skipped. A failed slot ignores the rest of its reply, so the reply stream
// stays in step.
//
// The connection uses `any_adapter`: a non-template handle to any response, fed one
// complete reply message (as found by `resp3::framer`) at a time. Each reply is parsed in
// one synchronous call, so adapter state lives on the stack and nothing is allocated
// besides the values themselves.

#include <algorithm>
#include <boost/system/error_code.hpp>
#include <concepts>
#include <corvo/redis/error.hpp>
#include <corvo/redis/resp3/detail/numbers.hpp>
#include <corvo/redis/resp3/node.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <corvo/redis/resp3/type.hpp>
#include <corvo/redis/response.hpp>
#include <corvo/redis/result.hpp>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace corvo::redis {
namespace detail {

using resp3::node_view;
using resp3::type;

// Upper bound for reserving ahead of an aggregate's elements. The size was announced by
// the server; a framer guarantees the elements are present, but this code does not rely
// on it for memory safety.
inline constexpr std::size_t max_reserve = 4096;

inline bool fail(error code, std::string message, reply_error& err) {
  err.code = code;
  err.message = std::move(message);
  return false;
}

inline bool fail_mismatch(const node_view& n, std::string_view expected, reply_error& err) {
  std::string text = "expected ";
  text += expected;
  text += ", got ";
  text += resp3::to_string(n.data_type);
  return fail(error::type_mismatch, std::move(text), err);
}

// Checks every adapter makes on the root node of its value.
inline bool check_root(const node_view& n, reply_error& err) {
  if (resp3::is_error(n.data_type)) {
    return fail(error::server_error, std::string(n.value), err);
  }
  if (n.data_type == type::null) {
    return fail(error::unexpected_null, "unexpected null", err);
  }
  return true;
}

template <class T>
inline constexpr bool always_false = false;

template <class T>
struct reply_adapter {
  static_assert(always_false<T>,
                "corvo::redis: no response adapter for this type; see adapter.hpp for the "
                "supported ones, or use std::vector<resp3::node>");
};

// Types whose value is one leaf node: allowed as map keys and set elements.
template <class T>
concept leaf_value = std::same_as<T, std::string> || std::is_arithmetic_v<T>;

// Every adapter has this shape:
//   explicit reply_adapter(T& target);
//   bool on_node(const node_view& n, std::size_t depth, reply_error& err);
// `depth` is relative to the root of the value (0 for the root). Returns false, with `err`
// set, when the value cannot be had; after that no more nodes of the value are fed.

template <>
struct reply_adapter<std::string> {
  explicit reply_adapter(std::string& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t, reply_error& err) {
    if (!check_root(n, err)) {
      return false;
    }
    switch (n.data_type) {
      case type::simple_string:
      case type::bulk_string:
      case type::integer:
      case type::double_:
      case type::big_number:
        out_->assign(n.value);
        return true;
      case type::verbatim_string:
        out_->assign(resp3::verbatim_text(n));
        return true;
      default:
        return fail_mismatch(n, "a string", err);
    }
  }
  std::string* out_;
};

template <class T>
requires(std::integral<T> && !std::same_as<T, bool>) struct reply_adapter<T> {
  explicit reply_adapter(T& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t, reply_error& err) {
    if (!check_root(n, err)) {
      return false;
    }
    switch (n.data_type) {
      case type::integer:
      case type::big_number:
      case type::simple_string:
      case type::bulk_string:
        if (!resp3::detail::parse_integer(n.value, *out_)) {
          return fail(error::not_a_number,
                      "not an integer in range of the declared type: " + std::string(n.value), err);
        }
        return true;
      default:
        return fail_mismatch(n, "an integer", err);
    }
  }
  T* out_;
};

template <std::floating_point T>
struct reply_adapter<T> {
  explicit reply_adapter(T& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t, reply_error& err) {
    if (!check_root(n, err)) {
      return false;
    }
    switch (n.data_type) {
      case type::double_:
      case type::integer:
      case type::big_number:
      case type::simple_string:
      case type::bulk_string: {
        double v;
        if (!resp3::detail::parse_double(n.value, v)) {
          return fail(error::not_a_number, "not a number: " + std::string(n.value), err);
        }
        *out_ = static_cast<T>(v);
        return true;
      }
      default:
        return fail_mismatch(n, "a double", err);
    }
  }
  T* out_;
};

template <>
struct reply_adapter<bool> {
  explicit reply_adapter(bool& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t, reply_error& err) {
    if (!check_root(n, err)) {
      return false;
    }
    if (n.data_type == type::boolean) {
      *out_ = n.value == "t";
      return true;
    }
    if (n.data_type == type::integer && (n.value == "0" || n.value == "1")) {
      *out_ = n.value == "1";
      return true;
    }
    return fail_mismatch(n, "a boolean or integer 0/1", err);
  }
  bool* out_;
};

template <>
struct reply_adapter<ignore_t> {
  explicit reply_adapter(ignore_t&) noexcept {}
  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0 && resp3::is_error(n.data_type)) {
      return fail(error::server_error, std::string(n.value), err);
    }
    return true;
  }
};

template <>
struct reply_adapter<std::vector<resp3::node>> {
  explicit reply_adapter(std::vector<resp3::node>& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      // Nested error nodes are data of the tree; only an error as the whole reply fails.
      if (resp3::is_error(n.data_type)) {
        return fail(error::server_error, std::string(n.value), err);
      }
      out_->clear();
    }
    out_->push_back(resp3::node{n.data_type, n.aggregate_size, depth, std::string(n.value)});
    return true;
  }
  std::vector<resp3::node>* out_;
};

template <class T>
struct reply_adapter<std::optional<T>> {
  explicit reply_adapter(std::optional<T>& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      if (n.data_type == type::null) {
        inner_.reset();
        out_->reset();
        return true;
      }
      inner_.reset();
      out_->emplace();
      inner_.emplace(**out_);
    }
    return inner_->on_node(n, depth, err);
  }
  std::optional<T>* out_;
  std::optional<reply_adapter<T>> inner_;
};

template <class T>
struct reply_adapter<result<T>> {
  explicit reply_adapter(result<T>& out) noexcept : out_(&out) {}
  // Never fails: an error of the inner value is stored in the result instead.
  bool on_node(const node_view& n, std::size_t depth, reply_error&) {
    if (depth == 0) {
      failed_ = false;
      inner_.reset();
      out_->emplace();
      inner_.emplace(**out_);
    }
    if (failed_) {
      return true;
    }
    reply_error inner_error;
    if (!inner_->on_node(n, depth, inner_error)) {
      failed_ = true;
      inner_.reset();  // it points into the value being replaced
      *out_ = result<T>(boost::system::in_place_error, std::move(inner_error));
    }
    return true;
  }
  result<T>* out_;
  std::optional<reply_adapter<T>> inner_;
  bool failed_ = false;
};

template <class T, class A>
struct reply_adapter<std::vector<T, A>> {
  explicit reply_adapter(std::vector<T, A>& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      if (!check_root(n, err)) {
        return false;
      }
      if (!resp3::is_aggregate(n.data_type)) {
        return fail_mismatch(n, "an array", err);
      }
      element_.reset();
      out_->clear();
      out_->reserve(
          std::min(n.aggregate_size * resp3::element_multiplicity(n.data_type), max_reserve));
      return true;
    }
    if (depth == 1) {
      element_.reset();
      out_->emplace_back();
      element_.emplace(out_->back());
    }
    return element_->on_node(n, depth - 1, err);
  }
  std::vector<T, A>* out_;
  std::optional<reply_adapter<T>> element_;
};

// std::set / std::unordered_set of leaf values.
template <class Set>
struct set_adapter {
  using value_type = typename Set::value_type;
  static_assert(leaf_value<value_type>, "set elements must be strings or numbers");

  explicit set_adapter(Set& out) noexcept : out_(&out) {}
  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      if (!check_root(n, err)) {
        return false;
      }
      if (!resp3::is_aggregate(n.data_type)) {
        return fail_mismatch(n, "a set or array", err);
      }
      out_->clear();
      return true;
    }
    // Leaf elements: every node here is at depth 1 (an aggregate element fails below).
    value_type v{};
    if (!reply_adapter<value_type>(v).on_node(n, 0, err)) {
      return false;
    }
    out_->insert(std::move(v));
    return true;
  }
  Set* out_;
};

template <class T, class C, class A>
struct reply_adapter<std::set<T, C, A>> : set_adapter<std::set<T, C, A>> {
  using set_adapter<std::set<T, C, A>>::set_adapter;
};
template <class T, class H, class E, class A>
struct reply_adapter<std::unordered_set<T, H, E, A>> : set_adapter<std::unordered_set<T, H, E, A>> {
  using set_adapter<std::unordered_set<T, H, E, A>>::set_adapter;
};

// Maps and vectors of pairs. Accepts a RESP3 map, a flat array (k, v, k, v) and an array
// of 2-element arrays; which of the two array forms it is shows at the first element.
template <class Container, class K, class V>
struct pairs_adapter {
  static_assert(leaf_value<K>, "map keys must be strings or numbers");

  explicit pairs_adapter(Container& out) noexcept : out_(&out) {}

  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      if (!check_root(n, err)) {
        return false;
      }
      if (!resp3::is_aggregate(n.data_type)) {
        return fail_mismatch(n, "a map", err);
      }
      out_->clear();
      value_.reset();
      expect_key_ = true;
      const std::size_t elements = n.aggregate_size * resp3::element_multiplicity(n.data_type);
      if (n.data_type == type::map) {
        mode_ = mode::flat;
      } else {
        mode_ = mode::undecided;
        odd_ = elements % 2 != 0;
      }
      if constexpr (requires { out_->reserve(std::size_t{}); }) {
        out_->reserve(std::min(elements / 2, max_reserve));
      }
      return true;
    }
    if (mode_ == mode::undecided) {
      mode_ = resp3::is_aggregate(n.data_type) ? mode::nested : mode::flat;
      if (mode_ == mode::flat && odd_) {
        return fail(error::size_mismatch, "flat array with an odd number of elements", err);
      }
    }
    const std::size_t base = mode_ == mode::flat ? 1 : 2;
    if (depth < base) {
      // Nested form: the 2-element array holding one pair.
      if (!check_root(n, err)) {
        return false;
      }
      if (!resp3::is_aggregate(n.data_type)) {
        return fail_mismatch(n, "a key/value pair", err);
      }
      if (n.aggregate_size * resp3::element_multiplicity(n.data_type) != 2) {
        return fail(error::size_mismatch, "pair with other than 2 elements", err);
      }
      expect_key_ = true;
      return true;
    }
    if (depth == base) {
      if (expect_key_) {
        key_ = K{};
        if (!reply_adapter<K>(key_).on_node(n, 0, err)) {
          return false;
        }
        expect_key_ = false;
        return true;
      }
      expect_key_ = true;
      value_.reset();
      value_.emplace(insert());
    }
    return value_->on_node(n, depth - base, err);
  }

 private:
  enum class mode { undecided, flat, nested };

  V& insert() {
    if constexpr (requires { out_->try_emplace(std::move(key_)); }) {
      // A repeated key: the last value wins, as HGETALL never repeats keys anyway.
      auto it = out_->try_emplace(std::move(key_)).first;
      it->second = V{};
      return it->second;
    } else {
      out_->emplace_back(std::move(key_), V{});
      return out_->back().second;
    }
  }

  Container* out_;
  mode mode_ = mode::undecided;
  bool odd_ = false;
  bool expect_key_ = true;
  K key_{};
  std::optional<reply_adapter<V>> value_;
};

template <class K, class V, class C, class A>
struct reply_adapter<std::map<K, V, C, A>> : pairs_adapter<std::map<K, V, C, A>, K, V> {
  using pairs_adapter<std::map<K, V, C, A>, K, V>::pairs_adapter;
};
template <class K, class V, class H, class E, class A>
struct reply_adapter<std::unordered_map<K, V, H, E, A>>
    : pairs_adapter<std::unordered_map<K, V, H, E, A>, K, V> {
  using pairs_adapter<std::unordered_map<K, V, H, E, A>, K, V>::pairs_adapter;
};
template <class K, class V, class A>
struct reply_adapter<std::vector<std::pair<K, V>, A>>
    : pairs_adapter<std::vector<std::pair<K, V>, A>, K, V> {
  using pairs_adapter<std::vector<std::pair<K, V>, A>, K, V>::pairs_adapter;
};

// std::tuple and std::pair: a fixed number of elements, each with its own type.
template <class Tuple, class Indices = std::make_index_sequence<std::tuple_size_v<Tuple>>>
struct tuple_adapter;

template <class Tuple, std::size_t... I>
struct tuple_adapter<Tuple, std::index_sequence<I...>> {
  static constexpr std::size_t size = sizeof...(I);

  explicit tuple_adapter(Tuple& out) noexcept : elements_(std::get<I>(out)...) {}

  bool on_node(const node_view& n, std::size_t depth, reply_error& err) {
    if (depth == 0) {
      if (!check_root(n, err)) {
        return false;
      }
      if (!resp3::is_aggregate(n.data_type)) {
        return fail_mismatch(n, "an array", err);
      }
      const std::size_t elements = n.aggregate_size * resp3::element_multiplicity(n.data_type);
      if (elements != size) {
        return fail(
            error::size_mismatch,
            "expected " + std::to_string(size) + " elements, got " + std::to_string(elements), err);
      }
      next_ = 0;
      return true;
    }
    if (depth == 1) {
      current_ = next_++;
    }
    bool ok = true;
    (void)((current_ == I ? (ok = std::get<I>(elements_).on_node(n, depth - 1, err), true)
                          : false) ||
           ...);
    return ok;
  }

  std::tuple<reply_adapter<std::tuple_element_t<I, Tuple>>...> elements_;
  std::size_t next_ = 0;
  std::size_t current_ = 0;
};

template <class... Ts>
struct reply_adapter<std::tuple<Ts...>> : tuple_adapter<std::tuple<Ts...>> {
  using tuple_adapter<std::tuple<Ts...>>::tuple_adapter;
};
template <class A, class B>
struct reply_adapter<std::pair<A, B>> : tuple_adapter<std::pair<A, B>> {
  using tuple_adapter<std::pair<A, B>>::tuple_adapter;
};

// Feeds one complete reply to a top-level adapter, leaving attributes out: an attribute
// node and its subtree are skipped, and the value it describes follows at its depth.
template <class Adapter>
void feed_reply(std::string_view message, Adapter& adapter, boost::system::error_code& ec) {
  bool skipping = false;
  std::size_t skip_depth = 0;
  bool stopped = false;
  reply_error err;
  resp3::parse(
      message,
      [&](const node_view& n) {
        if (skipping) {
          if (n.depth > skip_depth) {
            return;
          }
          skipping = false;
        }
        if (n.data_type == type::attribute) {
          if (n.aggregate_size > 0) {
            skipping = true;
            skip_depth = n.depth;
          }
          return;
        }
        if (!stopped && !adapter.on_node(n, n.depth, err)) {
          stopped = true;
        }
      },
      ec);
}

}  // namespace detail

/// Parses one complete reply message (e.g. `resp3::message::data` from a framer) into
/// `out`. `ec` is set only when the bytes are not one valid RESP3 message; whatever is
/// wrong with the reply itself is stored in `out`.
template <class T>
void adapt(std::string_view message, result<T>& out, boost::system::error_code& ec) {
  detail::reply_adapter<result<T>> adapter(out);
  detail::feed_reply(message, adapter, ec);
}

/// Appends the nodes of one complete reply message to `out`, unchanged (attributes and
/// error nodes included).
inline void adapt(std::string_view message, generic_response& out, boost::system::error_code& ec) {
  resp3::parse(
      message,
      [&out](const resp3::node_view& n) {
        out.push_back(resp3::node{n.data_type, n.aggregate_size, n.depth, std::string(n.value)});
      },
      ec);
}

/// A type-erased reference to a response (`response<Ts...>`, `generic_response` or
/// `ignore`), for the connection: two pointers and a size, no allocation. The response
/// must outlive it.
class any_adapter {
 public:
  /// `size()` of responses that take any number of replies.
  static constexpr std::size_t unbounded = static_cast<std::size_t>(-1);

  template <class... Ts>
  any_adapter(std::tuple<result<Ts>...>& r) noexcept  // NOLINT: implicit on purpose
      : target_(&r), size_(sizeof...(Ts)), deliver_(&deliver_slot<Ts...>) {}

  any_adapter(generic_response& r) noexcept  // NOLINT: implicit on purpose
      : target_(&r), size_(unbounded), deliver_(&deliver_generic) {}

  any_adapter(ignore_t = ignore) noexcept  // NOLINT: implicit on purpose
      : target_(nullptr), size_(unbounded), deliver_(nullptr) {}

  /// Number of replies the response has room for; a request whose
  /// `expected_responses()` exceeds it must be refused with `error::response_too_small`.
  std::size_t size() const noexcept { return size_; }

  /// Delivers reply `index` (0-based, in request order): the bytes of one complete message
  /// as found by `resp3::framer`. Sets `ec` for `error::response_too_small` or a protocol
  /// error; a reply that does not fit its slot is recorded in the slot, not here.
  void deliver(std::size_t index, std::string_view message, boost::system::error_code& ec) const {
    if (index >= size_) {
      ec = error::response_too_small;
      return;
    }
    if (deliver_ != nullptr) {
      deliver_(target_, index, message, ec);
    }
  }

 private:
  using deliver_fn = void (*)(void*, std::size_t, std::string_view, boost::system::error_code&);

  template <class Response, std::size_t I>
  static void deliver_one(Response& r, std::string_view message, boost::system::error_code& ec) {
    adapt(message, std::get<I>(r), ec);
  }

  template <class... Ts>
  static void deliver_slot(void* target, std::size_t index, std::string_view message,
                           boost::system::error_code& ec) {
    using response_type = std::tuple<result<Ts>...>;
    if constexpr (sizeof...(Ts) > 0) {
      auto& r = *static_cast<response_type*>(target);
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        using slot_fn = void (*)(response_type&, std::string_view, boost::system::error_code&);
        static constexpr slot_fn slots[] = {&deliver_one<response_type, I>...};
        slots[index](r, message, ec);
      }
      (std::index_sequence_for<Ts...>{});
    }
  }

  static void deliver_generic(void* target, std::size_t, std::string_view message,
                              boost::system::error_code& ec) {
    adapt(message, *static_cast<generic_response*>(target), ec);
  }

  void* target_;
  std::size_t size_;
  deliver_fn deliver_;
};

}  // namespace corvo::redis
