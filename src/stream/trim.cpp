#include <corvo/redis/script.hpp>
#include <corvo/stream/trim.hpp>
#include <stdexcept>

#include "reply_tree.hpp"
#include "scripts.hpp"

namespace corvo::stream {
namespace {

const redis::script& trim_script() {
  static const redis::script script(std::string(detail::lua::ids) + detail::lua::safe_trim);
  return script;
}

trim_limit limit_of(const std::string& text) {
  if (text == "pending") {
    return trim_limit::pending;
  }
  if (text == "undelivered") {
    return trim_limit::undelivered;
  }
  return trim_limit::none;
}

}  // namespace

std::string_view to_string(trim_limit l) noexcept {
  switch (l) {
    case trim_limit::none:
      return "none";
    case trim_limit::pending:
      return "pending";
    case trim_limit::undelivered:
      return "undelivered";
  }
  return "unknown";
}

asio::awaitable<trim_result> safe_trim(redis::client& redis, std::string stream,
                                       trim_options options) {
  if (options.max_age.has_value() == options.min_id.has_value()) {
    throw std::invalid_argument("safe_trim: give exactly one of max_age and min_id");
  }
  std::vector<std::string> args;
  if (options.max_age) {
    if (options.max_age->count() < 0) {
      throw std::invalid_argument("safe_trim: max_age must not be negative");
    }
    args.push_back("age");
    args.push_back(std::to_string(options.max_age->count()));
  } else {
    const auto id = normalize_id(*options.min_id);
    if (!id) {
      throw boost::system::system_error(admin_error::bad_id,
                                        "'" + *options.min_id + "' is not a stream id");
    }
    args.push_back("id");
    args.push_back(*id);
  }
  args.push_back(options.trim_undelivered ? "1" : "0");
  std::vector<std::string> keys;
  keys.push_back(stream);
  redis::response<std::vector<redis::resp3::node>> resp;
  co_await trim_script().exec(redis, keys, args, resp);
  const auto reply = detail::to_tree(std::get<0>(resp).value());
  const auto& items = reply.items;
  if (items.empty()) {
    throw std::runtime_error("safe_trim: unexpected reply from the trim script");
  }
  if (items[0].text == "-1") {
    throw boost::system::system_error(admin_error::no_such_stream,
                                      "stream '" + stream + "' does not exist");
  }
  if (items[0].text == "-2") {
    throw boost::system::system_error(
        admin_error::wrong_type, "key '" + stream + "' holds a " +
                                     (items.size() > 1 ? items[1].text : "?") + ", not a stream");
  }
  if (items.size() != 6) {
    throw std::runtime_error("safe_trim: unexpected reply from the trim script");
  }
  trim_result r;
  r.stream = stream;
  r.trimmed = detail::to_unsigned(items[0].text).value_or(0);
  r.requested_min_id = items[1].text;
  r.min_id = items[2].text;
  r.limited_by = limit_of(items[3].text);
  r.limiting_group = items[4].text;
  r.length = detail::to_unsigned(items[5].text).value_or(0);
  co_return r;
}

}  // namespace corvo::stream
