#pragma once
// Reading exceptions that arrive as std::exception_ptr (a coroutine's completion, a task
// group's collected errors) for decisions and log lines.

#include <exception>
#include <string>

namespace corvo {

/// True when `e` holds a boost::system::system_error with asio::error::operation_aborted,
/// i.e. the operation was cancelled rather than failed.
bool is_operation_aborted(const std::exception_ptr& e) noexcept;

/// The exception's what(), without the " [category:value at file:line]" suffix Boost 1.81's
/// system_error appends; "unknown exception" for one not derived from std::exception and
/// "no exception" for a null pointer.
std::string describe(const std::exception_ptr& e);

}  // namespace corvo
