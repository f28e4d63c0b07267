#pragma once
// Appends RESP3 frames to a byte buffer. Requests are arrays of bulk strings (the only
// form Redis accepts from clients); the other headers serve tests and tools that need to
// produce replies.

#include <charconv>
#include <corvo/redis/resp3/type.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace corvo::redis::resp3 {

namespace detail {
inline void append_decimal(std::string& out, std::size_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, end);
}
}  // namespace detail

/// Appends an aggregate or bulk header: the type byte, `size` and CRLF, e.g. "*3\r\n".
/// For maps `size` counts pairs.
inline void add_header(std::string& out, type t, std::size_t size) {
  out.push_back(type_byte(t));
  detail::append_decimal(out, size);
  out.append("\r\n", 2);
}

/// Appends one bulk string: "$<length>\r\n<bytes>\r\n".
inline void add_bulk(std::string& out, std::string_view bytes) {
  add_header(out, type::bulk_string, bytes.size());
  out.append(bytes);
  out.append("\r\n", 2);
}

}  // namespace corvo::redis::resp3
