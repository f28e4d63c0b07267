#pragma once
// Strict decimal parsing shared by the parser (which validates wire values) and the
// adapters (which convert them). No locale, no allocation on the common path, no
// whitespace or trailing bytes accepted.

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

namespace corvo::redis::resp3::detail {

/// A decimal integer that fits `Int`, optionally with a leading '+' (or '-' when signed).
template <class Int>
bool parse_integer(std::string_view s, Int& out) noexcept {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    // "+-1" must not pass as -1.
    if (!s.empty() && s.front() == '-') {
      return false;
    }
  }
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

/// A signed 64-bit integer, the range of a RESP3 `:` integer.
inline bool parse_int64(std::string_view s, std::int64_t& out) noexcept {
  return parse_integer(s, out);
}

/// A RESP length or count: digits only (the RESP2 "-1" is handled by the caller).
inline bool parse_length(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || s.front() < '0' || s.front() > '9') {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

/// A RESP3 double: what `strtod` reads in the C locale, including inf/-inf/nan and an
/// optional '+', without surrounding whitespace. Out-of-range values become +-inf or 0
/// like `strtod`, since the text was a valid number.
inline bool parse_double(std::string_view s, double& out) noexcept {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') {
      return false;
    }
  }
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ptr != s.data() + s.size()) {
    return false;
  }
  if (ec == std::errc::result_out_of_range) {
    // from_chars leaves `out` untouched here; strtod gives the IEEE result (inf or a
    // denormal/zero). Rare, so the copy for the terminating NUL does not matter.
    try {
      std::string copy(s);
      out = std::strtod(copy.c_str(), nullptr);
    } catch (...) {
      return false;
    }
    return true;
  }
  return ec == std::errc{};
}

/// A RESP3 big number: an optionally signed, non-empty run of decimal digits.
inline bool is_big_number(std::string_view s) noexcept {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace corvo::redis::resp3::detail
