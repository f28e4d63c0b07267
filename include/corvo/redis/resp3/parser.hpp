#pragma once
// The RESP3 parser: an incremental, allocation-free state machine that turns the bytes of
// one top-level message into a pre-order sequence of `node_view`s.
//
// Design (after Boost.Redis's resp3::parser, with limits and out-of-band attributes):
//  - The caller keeps the message bytes in its own buffer and passes a view of them,
//    starting at the message's first byte, on every call. The parser stores offsets, not
//    pointers, so the buffer may grow or move between calls (e.g. a std::string that is
//    appended to by the next read). Node values are views into that buffer.
//  - `next()` returns one node, or nothing when more bytes are needed; the state (offset,
//    stack of remaining element counts) survives until the next call. A node is returned
//    only once it is complete (a bulk string only when its whole payload and CRLF arrived).
//  - The stack is a fixed array (`parser_limits::depth_capacity` frames); nothing is
//    allocated. Hostile input is rejected by limits on depth, bulk length, aggregate size
//    and message size, with a `corvo::redis::error` protocol code. After an error the
//    parser stays failed until `reset()`.
//  - Attributes (`|`) are out of band: they are emitted (type attribute, then their
//    key/value children) but do not count as an element of their parent; the value they
//    describe follows at the same depth.
//
// Most code does not drive `parser` directly:
//  - `framer` (framer.hpp) runs it over a read buffer to find complete top-level messages
//    and tells push from reply; it never hands half a message on.
//  - `parse()` below runs it over one complete message and hands every node to a visitor
//    (the response adapters, adapter.hpp). Adapters therefore never see half a message,
//    and a message that arrives in many reads is scanned incrementally, then parsed once.

#include <array>
#include <boost/system/error_code.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/redis/resp3/node.hpp>
#include <corvo/redis/resp3/type.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace corvo::redis::resp3 {

/// Bounds that keep a broken or hostile server from crashing the client or making it
/// buffer without limit. Exceeding one is a protocol error.
struct parser_limits {
  /// Hard upper bound of `max_depth`: the size of the parser's fixed stack.
  static constexpr std::size_t depth_capacity = 64;

  /// Deepest allowed node: the number of aggregates enclosing it (a top-level array's
  /// elements have depth 1). Clamped to `depth_capacity`. Real replies nest 4-5 deep
  /// (CLUSTER SHARDS, XREADGROUP); Lua scripts may go further.
  std::size_t max_depth = 16;
  /// Longest bulk string / bulk error / verbatim string payload. Redis's own default
  /// proto-max-bulk-len is 512 MiB.
  std::size_t max_bulk_length = 512ull * 1024 * 1024;
  /// Most elements one aggregate may announce (pairs for maps). Redis collections hold up
  /// to 2^32 - 1 elements.
  std::size_t max_aggregate_size = 0xffffffffull;
  /// Largest top-level message in bytes. A message is rejected as soon as it announces
  /// (by a bulk length or an element count) or reaches a size beyond this, so the
  /// connection's read buffer stays bounded by it.
  std::size_t max_message_size = 1024ull * 1024 * 1024;
};

/// No limits beyond the stack capacity: for re-parsing messages a `framer` already checked.
constexpr parser_limits permissive_limits() noexcept {
  parser_limits l;
  l.max_depth = parser_limits::depth_capacity;
  l.max_bulk_length = static_cast<std::size_t>(-1);
  l.max_aggregate_size = static_cast<std::size_t>(-1);
  l.max_message_size = static_cast<std::size_t>(-1);
  return l;
}

class parser {
 public:
  explicit parser(const parser_limits& limits = {}) noexcept;

  /// Parses the next node of the current message. `message` starts at the message's first
  /// byte (the same one on every call until `done()`); it may have grown or moved since the
  /// last call. Returns the node, or nullopt when more bytes are needed (`ec` clear) or on
  /// a protocol error (`ec` set). Once `done()`, returns nullopt until `reset()`.
  std::optional<node_view> next(std::string_view message, boost::system::error_code& ec) noexcept;

  /// The message is complete; `consumed()` is its size.
  bool done() const noexcept { return done_; }
  /// Bytes of the message parsed so far.
  std::size_t consumed() const noexcept { return pos_; }
  /// Type of the message's root value (attributes before it skipped); meaningful once a
  /// non-attribute node was parsed at depth 0, e.g. when `done()`.
  type root_type() const noexcept { return root_type_; }
  /// Prepares for a new message at a new position.
  void reset() noexcept;

  const parser_limits& limits() const noexcept { return limits_; }

 private:
  struct frame {
    // Children still expected, counting both halves of map pairs.
    std::uint64_t remaining;
    // An attribute does not count as an element of its parent.
    bool attribute;
  };

  std::optional<node_view> fail(error e, boost::system::error_code& ec) noexcept;
  // One element completed at the current depth: pop finished aggregates.
  void finish_element() noexcept;

  parser_limits limits_;
  std::size_t pos_ = 0;
  // Where the search for the CR of the current line resumes, so a long line that arrives
  // in many pieces is scanned once.
  std::size_t line_scan_ = 0;
  std::size_t depth_ = 0;
  bool done_ = false;
  bool root_seen_ = false;
  type root_type_ = type::null;
  error error_{};
  bool failed_ = false;
  // Left uninitialised on purpose: only frames below depth_ are ever read.
  std::array<frame, parser_limits::depth_capacity> stack_;
};

/// Parses one complete message at the start of `data`, calling `on_node(const node_view&)`
/// for each node in pre-order. Returns the message size. Intended for messages found by a
/// `framer` (so the visitor never sees a partial message); given a partial message it
/// returns 0 with `error::incomplete_message` after the visitor saw a prefix. Limits
/// default to the most permissive ones, since the framer already applied the real ones.
template <class OnNode>
std::size_t parse(std::string_view data, OnNode&& on_node, boost::system::error_code& ec,
                  const parser_limits& limits = permissive_limits()) {
  parser p(limits);
  while (!p.done()) {
    std::optional<node_view> n = p.next(data, ec);
    if (!n) {
      if (!ec) {
        ec = error::incomplete_message;
      }
      return 0;
    }
    on_node(*n);
  }
  return p.consumed();
}

}  // namespace corvo::redis::resp3
