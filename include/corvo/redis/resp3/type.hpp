#pragma once
// The RESP3 data types (https://github.com/redis/redis-specifications, RESP3).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace corvo::redis::resp3 {

/// One RESP3 type, named after the spec; the comment gives the wire type byte.
enum class type : std::uint8_t {
  simple_string,    // +
  simple_error,     // -
  integer,          // :  (signed 64 bit)
  double_,          // ,  (also inf, -inf, nan)
  boolean,          // #  (t or f)
  big_number,       // (
  null,             // _  (and the RESP2 nulls $-1 and *-1)
  bulk_string,      // $
  bulk_error,       // !
  verbatim_string,  // =  (payload starts with a 3-byte format and ':', e.g. "txt:")
  array,            // *
  map,              // %  (size counts key/value pairs)
  set,              // ~
  attribute,        // |  (out-of-band metadata; precedes the value it describes)
  push,             // >  (out-of-band message: pub/sub, client tracking)
};

/// Aggregates carry children; every other type is a leaf.
constexpr bool is_aggregate(type t) noexcept {
  return t == type::array || t == type::map || t == type::set || t == type::attribute ||
         t == type::push;
}

/// Error replies (`-` and `!`).
constexpr bool is_error(type t) noexcept {
  return t == type::simple_error || t == type::bulk_error;
}

/// Children per announced element: maps and attributes announce pairs.
constexpr std::size_t element_multiplicity(type t) noexcept {
  return (t == type::map || t == type::attribute) ? 2 : 1;
}

/// The type for a wire type byte; false when the byte is not a RESP3 type.
constexpr bool type_from_byte(char c, type& out) noexcept {
  switch (c) {
    case '+':
      out = type::simple_string;
      return true;
    case '-':
      out = type::simple_error;
      return true;
    case ':':
      out = type::integer;
      return true;
    case ',':
      out = type::double_;
      return true;
    case '#':
      out = type::boolean;
      return true;
    case '(':
      out = type::big_number;
      return true;
    case '_':
      out = type::null;
      return true;
    case '$':
      out = type::bulk_string;
      return true;
    case '!':
      out = type::bulk_error;
      return true;
    case '=':
      out = type::verbatim_string;
      return true;
    case '*':
      out = type::array;
      return true;
    case '%':
      out = type::map;
      return true;
    case '~':
      out = type::set;
      return true;
    case '|':
      out = type::attribute;
      return true;
    case '>':
      out = type::push;
      return true;
    default:
      return false;
  }
}

/// The wire type byte of a type.
constexpr char type_byte(type t) noexcept {
  constexpr char bytes[] = {'+', '-', ':', ',', '#', '(', '_', '$',
                            '!', '=', '*', '%', '~', '|', '>'};
  return bytes[static_cast<std::size_t>(t)];
}

/// The spec name of a type ("simple_string", "map", ...), for diagnostics.
std::string_view to_string(type t) noexcept;

}  // namespace corvo::redis::resp3
