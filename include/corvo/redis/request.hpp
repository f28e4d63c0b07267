#pragma once
// A request: one or more Redis commands serialized back to back into one buffer, ready to
// be written in one go (a pipeline), plus what the connection needs to know about them.
//
//   request req;
//   req.push("SET", "key", 42);                          // *3 $3 SET $3 key $2 42
//   req.push("HSET", "h", std::map<std::string, int>{{"a", 1}, {"b", 2}});
//   req.push("ZADD", "z", 1.5, "m");                     // doubles in shortest round-trip form
//   req.push("DEL", std::vector<std::string>{"a", "b"}); // ranges expand to one bulk each
//
// Arguments, each becoming one or more bulk strings:
//  - anything convertible to std::string_view (bytes sent as they are, binary-safe);
//  - integers (not bool or char, which are too easy to pass by mistake) and floating point;
//  - std::pair / std::tuple of arguments (a map's value_type gives key then value);
//  - forward ranges of any of these (std::vector, std::map, std::set, spans, views);
//  - a user type T, via an ADL-found `void corvo_redis_to_bulk(std::string& payload,
//    const T&)` that appends exactly one bulk with `resp3::add_bulk`.
//
// What the connection reads from a request:
//  - `payload()`: the bytes to write;
//  - `expected_responses()`: replies to match in FIFO order. SUBSCRIBE, PSUBSCRIBE,
//    SSUBSCRIBE and their UNSUBSCRIBE counterparts get no reply in RESP3 (their
//    confirmation arrives as a push), so they are not counted;
//  - `has_hello()` with `config::hello_with_priority`: write this request first, ahead of
//    queued requests without HELLO (the handshake after a reconnect);
//  - `config::idempotent`: may be written again after a connection loss even if it was
//    already written (otherwise such a request fails with `error::connection_lost`);
//  - `has_blocking_command()`: BLPOP & co., WAIT, XREAD/XREADGROUP ... BLOCK. These hold the
//    connection until they return, so they belong on a dedicated connection (DESIGN §4).

#include <charconv>
#include <chrono>
#include <concepts>
#include <corvo/redis/resp3/serializer.hpp>
#include <corvo/redis/resp3/type.hpp>
#include <cstddef>
#include <iterator>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corvo::redis {

/// What one command of a request gets from the server, in a request that holds a
/// subscribe-family command (see request::reply_plan()).
struct command_replies {
  /// Empty: one ordinary reply. Otherwise the (lowercase) kind of the pushes that confirm
  /// the command ("subscribe", "punsubscribe", ...); an ordinary reply in their place is
  /// the server refusing the command (an error such as NOPERM).
  std::string_view confirmation;
  /// Confirmations expected: one per channel argument; 0 for an unsubscribe without
  /// arguments (one per subscription of that kind the connection holds, at least one).
  std::size_t count = 0;
};

namespace detail {

template <class T>
concept string_like = std::convertible_to<const T&, std::string_view>;

template <class T>
concept integer_arg =
    std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool> &&
    !std::same_as<std::remove_cv_t<T>, char> && !std::same_as<std::remove_cv_t<T>, char8_t>;

template <class T>
concept custom_arg = requires(std::string& out, const T& v) {
  corvo_redis_to_bulk(out, v);
};

template <class T>
struct is_tuple_like : std::false_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class... Ts>
struct is_tuple_like<std::tuple<Ts...>> : std::true_type {};

template <class T>
concept tuple_arg = is_tuple_like<std::remove_cv_t<T>>::value;

template <class T>
concept range_arg = !string_like<T> && !custom_arg<T> && std::ranges::forward_range<const T>;

// Number of bulks an argument type always produces, or 0 when it depends on the value
// (ranges), in which case the value is walked to count.
template <class T>
constexpr std::size_t static_bulk_count() {
  if constexpr (string_like<T> || integer_arg<T> || std::floating_point<T> || custom_arg<T>) {
    return 1;
  } else if constexpr (tuple_arg<T>) {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      const std::size_t counts[] = {
          static_bulk_count<std::remove_cvref_t<std::tuple_element_t<I, T>>>()...};
      std::size_t sum = 0;
      for (std::size_t c : counts) {
        if (c == 0) {
          return std::size_t{0};
        }
        sum += c;
      }
      return sum;
    }
    (std::make_index_sequence<std::tuple_size_v<T>>{});
  } else {
    return 0;
  }
}

template <class T>
std::size_t bulk_count(const T& arg) {
  if constexpr (static_bulk_count<T>() != 0) {
    return static_bulk_count<T>();
  } else if constexpr (tuple_arg<T>) {
    return std::apply([](const auto&... e) { return (std::size_t{0} + ... + bulk_count(e)); }, arg);
  } else if constexpr (range_arg<T>) {
    using element = std::remove_cvref_t<std::ranges::range_reference_t<const T>>;
    if constexpr (static_bulk_count<element>() != 0 && std::ranges::sized_range<const T>) {
      return static_cast<std::size_t>(std::ranges::size(arg)) * static_bulk_count<element>();
    } else {
      std::size_t n = 0;
      for (const auto& e : arg) {
        n += bulk_count(e);
      }
      return n;
    }
  } else {
    static_assert(sizeof(T) == 0,
                  "corvo::redis::request: unsupported argument type (bool and char are "
                  "rejected on purpose; pass a string or an int)");
    return 0;
  }
}

template <class T>
void append_arg(std::string& out, const T& arg) {
  if constexpr (string_like<T>) {
    resp3::add_bulk(out, std::string_view(arg));
  } else if constexpr (integer_arg<T> || std::floating_point<T>) {
    // Shortest text that reads back to the same value; inf and -inf as Redis spells them.
    char text[64];
    auto [end, ec] = std::to_chars(text, text + sizeof text, arg);
    resp3::add_bulk(out, std::string_view(text, static_cast<std::size_t>(end - text)));
  } else if constexpr (custom_arg<T>) {
    corvo_redis_to_bulk(out, arg);
  } else if constexpr (tuple_arg<T>) {
    std::apply([&out](const auto&... e) { (append_arg(out, e), ...); }, arg);
  } else if constexpr (range_arg<T>) {
    for (const auto& e : arg) {
      append_arg(out, e);
    }
  }
}

// What a command name means for the connection; see request.cpp.
enum class command_kind {
  regular,
  hello,
  subscribe,          // no reply; the confirmation comes as a push
  blocking,           // always blocks
  blocking_if_block,  // XREAD / XREADGROUP: blocks when given BLOCK
};
command_kind classify_command(std::string_view command) noexcept;
/// The longest a blocking command (serialized, `*N ...`) may hold the connection on
/// purpose: its timeout argument; milliseconds::max() when it may block forever (timeout
/// 0, or unreadable); 0 for a command that does not block.
std::chrono::milliseconds block_time_of(std::string_view command_resp);
/// "subscribe" for SUBSCRIBE (any case), ... ; empty for other commands.
std::string_view confirmation_kind(std::string_view command) noexcept;

}  // namespace detail

class request {
 public:
  struct config {
    /// When this request holds HELLO, the connection writes it before queued requests that
    /// do not (the handshake must come first after a reconnect).
    bool hello_with_priority = true;
    /// Safe to execute twice: after a connection loss the connection may write it again
    /// even if it had been written. When false it fails with `error::connection_lost`.
    bool idempotent = false;
    /// Fail with `error::not_connected` instead of waiting when there is no connection
    /// (on a cluster also with `error::cluster_down` instead of retrying CLUSTERDOWN or
    /// waiting for a slot's owner).
    bool fail_if_not_connected = false;
  };

  request() = default;
  explicit request(const config& cfg) : config_(cfg) {}

  /// Appends one command. See the file comment for the accepted argument types.
  template <class... Args>
  void push(std::string_view command, const Args&... args) {
    const std::size_t bulks = 1 + (std::size_t{0} + ... + detail::bulk_count(args));
    const std::size_t start = payload_.size();
    resp3::add_header(payload_, resp3::type::array, bulks);
    resp3::add_bulk(payload_, command);
    (detail::append_arg(payload_, args), ...);

    ++commands_;
    const auto kind = detail::classify_command(command);
    if (kind == detail::command_kind::subscribe) {
      if (reply_plan_.empty()) {
        reply_plan_.resize(commands_ - 1);  // the commands before: one reply each
      }
      reply_plan_.push_back({detail::confirmation_kind(command), bulks - 1});
    } else if (!reply_plan_.empty()) {
      reply_plan_.emplace_back();
    }
    switch (kind) {
      case detail::command_kind::regular:
        ++expected_responses_;
        break;
      case detail::command_kind::hello:
        ++expected_responses_;
        has_hello_ = true;
        break;
      case detail::command_kind::subscribe:
        has_subscribe_ = true;
        break;
      case detail::command_kind::blocking:
        ++expected_responses_;
        has_blocking_ = true;
        add_block_time(detail::block_time_of(std::string_view(payload_).substr(start)));
        break;
      case detail::command_kind::blocking_if_block: {
        ++expected_responses_;
        // XREAD / XREADGROUP block only when given BLOCK (also found inside a range).
        const auto block = detail::block_time_of(std::string_view(payload_).substr(start));
        if (block.count() != 0) {
          has_blocking_ = true;
          add_block_time(block);
        }
        break;
      }
    }
  }

  /// The serialized commands, to be written as they are.
  std::string_view payload() const noexcept { return payload_; }
  /// Number of commands pushed.
  std::size_t size() const noexcept { return commands_; }
  /// Number of replies the server sends in the FIFO reply stream (pushes not counted).
  std::size_t expected_responses() const noexcept { return expected_responses_; }
  bool has_hello() const noexcept { return has_hello_; }
  bool has_subscribe() const noexcept { return has_subscribe_; }
  bool has_blocking_command() const noexcept { return has_blocking_; }
  /// How long the server may hold this request on purpose: the sum of the timeouts of its
  /// blocking commands (BLPOP ... 2.5 -> 2500 ms, XREADGROUP ... BLOCK 500 -> 500 ms, WAIT
  /// 1 300 -> 300 ms), read from the commands themselves; milliseconds::max() when one of
  /// them may block forever (timeout 0). The connection adds it to its reply deadline
  /// (config::request_timeout). 0 for a request without blocking commands.
  std::chrono::milliseconds block_time() const noexcept { return block_time_; }
  /// Empty unless the request holds SUBSCRIBE & co.; then one entry per command, in order,
  /// saying how the server answers it (the connection matches confirmations and refusals
  /// with it).
  const std::vector<command_replies>& reply_plan() const noexcept { return reply_plan_; }

  const config& get_config() const noexcept { return config_; }
  config& get_config() noexcept { return config_; }

  /// Empties the request but keeps its buffer's capacity and its config.
  void clear() noexcept {
    payload_.clear();
    commands_ = 0;
    expected_responses_ = 0;
    has_hello_ = false;
    has_subscribe_ = false;
    has_blocking_ = false;
    block_time_ = std::chrono::milliseconds{0};
    reply_plan_.clear();
  }
  void reserve(std::size_t bytes) { payload_.reserve(bytes); }

 private:
  std::string payload_;
  std::size_t commands_ = 0;
  std::size_t expected_responses_ = 0;
  bool has_hello_ = false;
  bool has_subscribe_ = false;
  bool has_blocking_ = false;
  std::chrono::milliseconds block_time_{0};
  std::vector<command_replies> reply_plan_;
  config config_;

  void add_block_time(std::chrono::milliseconds t) noexcept {
    constexpr auto forever = std::chrono::milliseconds::max();
    block_time_ = (t == forever || block_time_ == forever || t > forever - block_time_)
                      ? forever
                      : block_time_ + t;
  }
};

}  // namespace corvo::redis
