#pragma once
// The outcome of one reply: the value the caller declared, or why it could not be had.
//
// `result<T>` is `boost::system::result<T, reply_error>`: `has_value()`, `*r`, `r->`,
// `r.value()` (throws `boost::system::system_error` carrying the code and the text) and
// `r.error()`. A server error reply ("-ERR unknown command", "!...") is stored as
// `reply_error{error::server_error, "ERR unknown command"}`; a reply the declared type
// cannot hold gets `error::type_mismatch` (or `unexpected_null`, `not_a_number`,
// `size_mismatch`) with a diagnostic text. Neither affects the other replies.

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <corvo/redis/error.hpp>
#include <ostream>
#include <string>

namespace corvo::redis {

struct reply_error {
  boost::system::error_code code;
  /// For `error::server_error` the server's text without the leading '-' or the bulk
  /// framing (e.g. "WRONGTYPE Operation against a key holding the wrong kind of value");
  /// otherwise a diagnostic such as "expected integer, got bulk_string".
  std::string message;

  friend bool operator==(const reply_error&, const reply_error&) = default;
  friend std::ostream& operator<<(std::ostream& os, const reply_error& e) {
    return os << e.code.message() << ": " << e.message;
  }
};

/// Found by ADL when `result<T>::value()` is called on an error.
[[noreturn]] inline void throw_exception_from_error(const reply_error& e,
                                                    const boost::source_location& loc) {
  boost::throw_with_location(boost::system::system_error(e.code, e.message), loc);
}

template <class T>
using result = boost::system::result<T, reply_error>;

}  // namespace corvo::redis
