#pragma once
// corvo's own error codes for framework-level failures. Layers above core (redis, kafka,
// schedule) define their own categories next to their code.

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace corvo {

/// Framework errors reported through `boost::system::error_code`.
enum class error {
  /// An operation did not complete before its deadline (see `with_timeout`).
  timed_out = 1,
  /// The operation was cancelled because its owner (task group, supervisor) is stopping.
  stopping,
  /// A component did not stop within its bounded stop time.
  stop_timeout,
};

/// The category of `corvo::error`; its name is "corvo".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace corvo

template <>
struct boost::system::is_error_code_enum<corvo::error> : std::true_type {};
