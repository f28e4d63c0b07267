#include <array>
#include <charconv>
#include <cmath>
#include <corvo/redis/request.hpp>
#include <cstdlib>
#include <string>
#include <vector>

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

namespace {

// The bulks of one serialized command (`*N $len arg ...`), command name included.
std::vector<std::string_view> command_bulks(std::string_view resp) {
  std::vector<std::string_view> out;
  auto line = [&resp]() -> std::string_view {
    const auto end = resp.find("\r\n");
    if (end == std::string_view::npos) {
      resp = {};
      return {};
    }
    auto l = resp.substr(0, end);
    resp.remove_prefix(end + 2);
    return l;
  };
  auto number = [](std::string_view text) {
    std::size_t n = 0;
    std::from_chars(text.data(), text.data() + text.size(), n);
    return n;
  };
  const auto header = line();
  if (header.size() < 2 || header[0] != '*') {
    return out;
  }
  const std::size_t count = number(header.substr(1));
  for (std::size_t i = 0; i < count; ++i) {
    const auto length_line = line();
    if (length_line.size() < 2 || length_line[0] != '$') {
      break;
    }
    const std::size_t length = number(length_line.substr(1));
    if (resp.size() < length + 2) {
      break;
    }
    out.push_back(resp.substr(0, length));
    resp.remove_prefix(length + 2);
  }
  return out;
}

constexpr auto forever = std::chrono::milliseconds::max();

// A timeout argument in seconds (BLPOP & co.: a decimal number) or milliseconds; 0 means
// no timeout. Unreadable: forever (no deadline is better than a wrong one).
std::chrono::milliseconds parse_timeout(std::string_view text, bool seconds) {
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !(value >= 0) || value > 1e12) {
    return forever;
  }
  const double ms = std::ceil(seconds ? value * 1000.0 : value);
  if (ms == 0) {
    return forever;
  }
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}

}  // namespace

std::chrono::milliseconds block_time_of(std::string_view command_resp) {
  const auto bulks = command_bulks(command_resp);
  if (bulks.empty()) {
    return forever;
  }
  const auto name = bulks.front();
  static constexpr std::array<std::string_view, 6> last_in_seconds = {
      "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BZPOPMIN", "BZPOPMAX"};
  for (std::string_view candidate : last_in_seconds) {
    if (iequals(name, candidate)) {
      return bulks.size() >= 2 ? parse_timeout(bulks.back(), true) : forever;
    }
  }
  if (iequals(name, "BLMPOP") || iequals(name, "BZMPOP")) {
    return bulks.size() >= 2 ? parse_timeout(bulks[1], true) : forever;
  }
  if (iequals(name, "WAIT") || iequals(name, "WAITAOF")) {
    return bulks.size() >= 2 ? parse_timeout(bulks.back(), false) : forever;
  }
  for (std::size_t i = 1; i + 1 < bulks.size(); ++i) {  // XREAD / XREADGROUP ... BLOCK ms
    if (iequals(bulks[i], "BLOCK")) {
      return parse_timeout(bulks[i + 1], false);
    }
  }
  return std::chrono::milliseconds{0};
}

std::string_view confirmation_kind(std::string_view command) noexcept {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kinds = {{
      {"SUBSCRIBE", "subscribe"},
      {"PSUBSCRIBE", "psubscribe"},
      {"SSUBSCRIBE", "ssubscribe"},
      {"UNSUBSCRIBE", "unsubscribe"},
      {"PUNSUBSCRIBE", "punsubscribe"},
      {"SUNSUBSCRIBE", "sunsubscribe"},
  }};
  for (const auto& [upper, lower] : kinds) {
    if (iequals(command, upper)) {
      return lower;
    }
  }
  return {};
}

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
