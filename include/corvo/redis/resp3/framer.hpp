#pragma once
// Finds complete top-level RESP3 messages at the front of a read buffer: the first half
// of reading a reply (the second is `resp3::parse` into an adapter).
//
// How a connection uses it:
//
//   resp3::framer framer{limits};
//   for (;;) {
//     auto msg = framer.next(buffer_view(), ec);   // buffer_view() starts at the unread bytes
//     if (ec) { close the connection: protocol error }
//     if (!msg) { read more into the buffer; continue; }
//     if (msg->is_push()) deliver to the push receiver;
//     else deliver to the adapter of the oldest waiting request;
//     consume msg->size() bytes from the buffer;   // msg->data dangles after this
//   }
//
// `next` is incremental: when the message is incomplete it remembers how far it got, and
// the next call (same message start, more bytes, buffer possibly moved) continues there,
// so a large reply arriving in many reads is scanned once. Everything the parser checks
// (syntax, depth, sizes) is checked here, before any adapter sees a node: a message either
// reaches its adapter whole and valid or not at all.

#include <boost/system/error_code.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <corvo/redis/resp3/type.hpp>
#include <cstddef>
#include <optional>
#include <string_view>

namespace corvo::redis::resp3 {

/// One complete top-level message, viewing the buffer passed to `framer::next`.
struct message {
  /// All bytes of the message, from its type byte to its last CRLF.
  std::string_view data;
  /// Type of its root value (attributes in front skipped): `push` for out-of-band
  /// messages, anything else for a reply.
  type kind = type::null;

  bool is_push() const noexcept { return kind == type::push; }
  /// Bytes the caller consumes from its buffer.
  std::size_t size() const noexcept { return data.size(); }
};

class framer {
 public:
  explicit framer(const parser_limits& limits = {}) noexcept : parser_(limits) {}

  /// Looks for one complete message at the start of `buffer`. Returns it when complete,
  /// and is then ready for the next message (the next call's buffer starts after this
  /// one). Returns nullopt when more bytes are needed (`ec` clear) or on a protocol error
  /// (`ec` set; the connection must be closed, and `next` keeps failing until `reset`).
  std::optional<message> next(std::string_view buffer, boost::system::error_code& ec) noexcept {
    while (!parser_.done()) {
      if (!parser_.next(buffer, ec)) {
        return std::nullopt;
      }
    }
    message m{buffer.substr(0, parser_.consumed()), parser_.root_type()};
    parser_.reset();
    return m;
  }

  /// Bytes of the current, still incomplete, message examined so far.
  std::size_t pending() const noexcept { return parser_.consumed(); }
  /// Forgets a partial message and any error, e.g. after a reconnect.
  void reset() noexcept { parser_.reset(); }

  const parser_limits& limits() const noexcept { return parser_.limits(); }

 private:
  parser parser_;
};

}  // namespace corvo::redis::resp3
