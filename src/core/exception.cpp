#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/exception.hpp>

namespace corvo {

bool is_operation_aborted(const std::exception_ptr& e) noexcept {
  if (!e) {
    return false;
  }
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& ex) {
    return ex.code() == boost::asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

std::string describe(const std::exception_ptr& e) {
  if (!e) {
    return "no exception";
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::string text = ex.what();
    if (const auto bracket = text.rfind(" ["); bracket != std::string::npos && text.back() == ']') {
      text.resize(bracket);
    }
    return text;
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace corvo
