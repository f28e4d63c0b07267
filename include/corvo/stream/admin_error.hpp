#pragma once
// Error codes of the stream admin calls (admin.hpp) and of safe trimming (trim.hpp).

#include <boost/system/error_code.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace corvo::stream {

/// Errors of the admin calls (category name "corvo.stream.admin").
enum class admin_error {
  no_such_stream = 1,  ///< the stream key does not exist
  wrong_type,          ///< the key holds something other than a stream
  no_such_group,       ///< the stream has no consumer group of that name
  bad_id,              ///< not a stream id ("1700000000000-0" or "1700000000000")
  cross_slot,          ///< a dead letter's source stream is in another hash slot (cluster)
};

const boost::system::error_category& admin_category() noexcept;

inline boost::system::error_code make_error_code(admin_error e) noexcept {
  return {static_cast<int>(e), admin_category()};
}

/// A stream entry id, validated: "ms-seq", or "ms" (read as "ms-0"). Returns nullopt for
/// anything else (negative, non-decimal, out of 64-bit range, "-", "+", "$", ">").
std::optional<std::string> normalize_id(std::string_view id);

}  // namespace corvo::stream

template <>
struct boost::system::is_error_code_enum<corvo::stream::admin_error> : std::true_type {};
