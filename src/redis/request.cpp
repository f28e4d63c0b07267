#include <array>
#include <corvo/redis/request.hpp>

namespace corvo::redis::detail {
namespace {

bool iequals(std::string_view a, std::string_view upper) noexcept {
  if (a.size() != upper.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
    if (c != upper[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

command_kind classify_command(std::string_view command) noexcept {
  // Short lists, checked on every push: a linear scan of a few names is cheaper than
  // building an uppercase copy for a hash lookup.
  static constexpr std::array<std::string_view, 6> subscribe = {
      "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};
  static constexpr std::array<std::string_view, 10> blocking = {
      "BLPOP",    "BRPOP",    "BRPOPLPUSH", "BLMOVE", "BLMPOP",
      "BZPOPMIN", "BZPOPMAX", "BZMPOP",     "WAIT",   "WAITAOF"};

  if (iequals(command, "HELLO")) {
    return command_kind::hello;
  }
  for (std::string_view name : subscribe) {
    if (iequals(command, name)) {
      return command_kind::subscribe;
    }
  }
  for (std::string_view name : blocking) {
    if (iequals(command, name)) {
      return command_kind::blocking;
    }
  }
  if (iequals(command, "XREAD") || iequals(command, "XREADGROUP")) {
    return command_kind::blocking_if_block;
  }
  return command_kind::regular;
}

}  // namespace corvo::redis::detail
