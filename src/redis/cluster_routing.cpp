#include <algorithm>
#include <array>
#include <charconv>
#include <corvo/redis/cluster/routing.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <utility>

namespace corvo::redis {
namespace {

// Reads "<prefix><decimal>\r\n" at `pos`; advances `pos` past it.
bool read_header(std::string_view payload, std::size_t& pos, char prefix, std::size_t& value) {
  if (pos >= payload.size() || payload[pos] != prefix) {
    return false;
  }
  const char* begin = payload.data() + pos + 1;
  const char* end = payload.data() + payload.size();
  const auto [stop, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc{} || stop + 1 >= end || stop[0] != '\r' || stop[1] != '\n') {
    return false;
  }
  pos = static_cast<std::size_t>(stop - payload.data()) + 2;
  return true;
}

// Upper-cases a command name into `buffer`; empty when it does not fit.
std::string_view upper(std::string_view name, std::array<char, 32>& buffer) noexcept {
  if (name.size() > buffer.size()) {
    return {};
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    buffer[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  return {buffer.data(), name.size()};
}

bool iequals(std::string_view a, std::string_view upper_word) noexcept {
  if (a.size() != upper_word.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
    if (c != upper_word[i]) {
      return false;
    }
  }
  return true;
}

using entry = std::pair<std::string_view, key_kind>;

// Commands whose keys are not simply the first argument. Sorted at first use.
const std::vector<entry>& command_table() {
  static const std::vector<entry> table = [] {
    std::vector<entry> t = {
        // keyless: any node
        {"ACL", key_kind::none},
        {"ASKING", key_kind::none},
        {"AUTH", key_kind::none},
        {"BGREWRITEAOF", key_kind::none},
        {"BGSAVE", key_kind::none},
        {"CLIENT", key_kind::none},
        {"CLUSTER", key_kind::none},
        {"COMMAND", key_kind::none},
        {"CONFIG", key_kind::none},
        {"DBSIZE", key_kind::none},
        {"DEBUG", key_kind::none},
        {"DISCARD", key_kind::none},
        {"ECHO", key_kind::none},
        {"EXEC", key_kind::none},
        {"FAILOVER", key_kind::none},
        {"FLUSHALL", key_kind::none},
        {"FLUSHDB", key_kind::none},
        {"FUNCTION", key_kind::none},
        {"HELLO", key_kind::none},
        {"INFO", key_kind::none},
        {"KEYS", key_kind::none},
        {"LASTSAVE", key_kind::none},
        {"LATENCY", key_kind::none},
        {"LOLWUT", key_kind::none},
        {"MODULE", key_kind::none},
        {"MONITOR", key_kind::none},
        {"MULTI", key_kind::none},
        {"PING", key_kind::none},
        {"PSUBSCRIBE", key_kind::none},
        {"PUBLISH", key_kind::none},
        {"PUBSUB", key_kind::none},
        {"PUNSUBSCRIBE", key_kind::none},
        {"QUIT", key_kind::none},
        {"RANDOMKEY", key_kind::none},
        {"READONLY", key_kind::none},
        {"READWRITE", key_kind::none},
        {"REPLICAOF", key_kind::none},
        {"RESET", key_kind::none},
        {"ROLE", key_kind::none},
        {"SAVE", key_kind::none},
        {"SCAN", key_kind::none},
        {"SCRIPT", key_kind::none},
        {"SELECT", key_kind::none},
        {"SHUTDOWN", key_kind::none},
        {"SLAVEOF", key_kind::none},
        {"SLOWLOG", key_kind::none},
        {"SUBSCRIBE", key_kind::none},
        {"SWAPDB", key_kind::none},
        {"TIME", key_kind::none},
        {"UNSUBSCRIBE", key_kind::none},
        {"UNWATCH", key_kind::none},
        {"WAIT", key_kind::none},
        {"WAITAOF", key_kind::none},
        // every argument
        {"DEL", key_kind::all},
        {"EXISTS", key_kind::all},
        {"MGET", key_kind::all},
        {"PFCOUNT", key_kind::all},
        {"PFMERGE", key_kind::all},
        {"SDIFF", key_kind::all},
        {"SDIFFSTORE", key_kind::all},
        {"SINTER", key_kind::all},
        {"SINTERSTORE", key_kind::all},
        {"SSUBSCRIBE", key_kind::all},
        {"SUNION", key_kind::all},
        {"SUNIONSTORE", key_kind::all},
        {"SUNSUBSCRIBE", key_kind::all},
        {"TOUCH", key_kind::all},
        {"UNLINK", key_kind::all},
        {"WATCH", key_kind::all},
        // k v k v
        {"MSET", key_kind::every_other},
        {"MSETNX", key_kind::every_other},
        // k k ... timeout
        {"BLPOP", key_kind::all_but_last},
        {"BRPOP", key_kind::all_but_last},
        {"BZPOPMAX", key_kind::all_but_last},
        {"BZPOPMIN", key_kind::all_but_last},
        // two keys
        {"BLMOVE", key_kind::first_two},
        {"BRPOPLPUSH", key_kind::first_two},
        {"COPY", key_kind::first_two},
        {"GEOSEARCHSTORE", key_kind::first_two},
        {"LCS", key_kind::first_two},
        {"LMOVE", key_kind::first_two},
        {"RENAME", key_kind::first_two},
        {"RENAMENX", key_kind::first_two},
        {"RPOPLPUSH", key_kind::first_two},
        {"SMOVE", key_kind::first_two},
        {"ZRANGESTORE", key_kind::first_two},
        // numkeys
        {"EVAL", key_kind::numkeys_at_1},
        {"EVALSHA", key_kind::numkeys_at_1},
        {"EVALSHA_RO", key_kind::numkeys_at_1},
        {"EVAL_RO", key_kind::numkeys_at_1},
        {"FCALL", key_kind::numkeys_at_1},
        {"FCALL_RO", key_kind::numkeys_at_1},
        {"BLMPOP", key_kind::numkeys_at_1},
        {"BZMPOP", key_kind::numkeys_at_1},
        {"LMPOP", key_kind::numkeys_at_0},
        {"SINTERCARD", key_kind::numkeys_at_0},
        {"ZDIFF", key_kind::numkeys_at_0},
        {"ZINTER", key_kind::numkeys_at_0},
        {"ZINTERCARD", key_kind::numkeys_at_0},
        {"ZMPOP", key_kind::numkeys_at_0},
        {"ZUNION", key_kind::numkeys_at_0},
        {"ZDIFFSTORE", key_kind::dest_then_numkeys},
        {"ZINTERSTORE", key_kind::dest_then_numkeys},
        {"ZUNIONSTORE", key_kind::dest_then_numkeys},
        {"BITOP", key_kind::all_after_first},
        {"XREAD", key_kind::after_streams},
        {"XREADGROUP", key_kind::after_streams},
        {"MEMORY", key_kind::second},
        {"OBJECT", key_kind::second},
        {"XGROUP", key_kind::second},
        {"XINFO", key_kind::second},
        {"GEORADIUS", key_kind::first_and_store},
        {"GEORADIUSBYMEMBER", key_kind::first_and_store},
        {"SORT", key_kind::first_and_store},
        {"SORT_RO", key_kind::first_and_store},
        {"MIGRATE", key_kind::migrate},
    };
    std::sort(t.begin(), t.end());
    return t;
  }();
  return table;
}

bool parse_count(std::string_view text, std::size_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

void append_range(std::span<const std::string_view> args, std::size_t from, std::size_t count,
                  std::vector<std::string_view>& keys) {
  for (std::size_t i = from; i < args.size() && i < from + count; ++i) {
    keys.push_back(args[i]);
  }
}

}  // namespace

bool split_commands(std::string_view payload, parsed_request& out) {
  out.words.clear();
  out.commands.clear();
  std::size_t pos = 0;
  while (pos < payload.size()) {
    const std::size_t start = pos;
    std::size_t count = 0;
    if (!read_header(payload, pos, '*', count) || count == 0) {
      return false;
    }
    parsed_request::command cmd;
    cmd.first_word = out.words.size();
    cmd.word_count = count;
    for (std::size_t i = 0; i < count; ++i) {
      std::size_t length = 0;
      if (!read_header(payload, pos, '$', length) || payload.size() - pos < length + 2 ||
          payload.compare(pos + length, 2, "\r\n") != 0) {
        return false;
      }
      out.words.push_back(payload.substr(pos, length));
      pos += length + 2;
    }
    cmd.bytes = payload.substr(start, pos - start);
    out.commands.push_back(cmd);
  }
  return true;
}

key_kind command_key_kind(std::string_view name) noexcept {
  std::array<char, 32> buffer;
  const std::string_view key = upper(name, buffer);
  if (key.empty()) {
    return key_kind::first;
  }
  const auto& table = command_table();
  const auto it = std::lower_bound(table.begin(), table.end(), key,
                                   [](const entry& e, std::string_view k) { return e.first < k; });
  if (it != table.end() && it->first == key) {
    return it->second;
  }
  return key_kind::first;
}

void command_keys(std::string_view name, std::span<const std::string_view> args,
                  std::vector<std::string_view>& keys) {
  const std::size_t n = args.size();
  switch (command_key_kind(name)) {
    case key_kind::none:
      return;
    case key_kind::first:
      append_range(args, 0, 1, keys);
      return;
    case key_kind::all:
      append_range(args, 0, n, keys);
      return;
    case key_kind::every_other:
      for (std::size_t i = 0; i < n; i += 2) {
        keys.push_back(args[i]);
      }
      return;
    case key_kind::all_but_last:
      append_range(args, 0, n == 0 ? 0 : n - 1, keys);
      return;
    case key_kind::first_two:
      append_range(args, 0, 2, keys);
      return;
    case key_kind::numkeys_at_1:
    case key_kind::numkeys_at_0:
    case key_kind::dest_then_numkeys: {
      const auto kind = command_key_kind(name);
      const std::size_t at = kind == key_kind::numkeys_at_0 ? 0 : 1;
      if (kind == key_kind::dest_then_numkeys) {
        append_range(args, 0, 1, keys);
      }
      std::size_t count = 0;
      if (at < n && parse_count(args[at], count)) {
        append_range(args, at + 1, count, keys);
      }
      return;
    }
    case key_kind::all_after_first:
      append_range(args, 1, n, keys);
      return;
    case key_kind::after_streams: {
      // Skip the options (and their values) that may precede STREAMS, so a key or group
      // named "streams" is not mistaken for the keyword.
      for (std::size_t i = 0; i < n;) {
        if (iequals(args[i], "GROUP")) {
          i += 3;
        } else if (iequals(args[i], "COUNT") || iequals(args[i], "BLOCK")) {
          i += 2;
        } else if (iequals(args[i], "STREAMS")) {
          const std::size_t rest = n - i - 1;
          append_range(args, i + 1, rest / 2, keys);
          return;
        } else {
          ++i;  // NOACK and future flags
        }
      }
      return;
    }
    case key_kind::second:
      if (n >= 2 && !iequals(args[0], "HELP") && !iequals(args[0], "STATS") &&
          !iequals(args[0], "DOCTOR") && !iequals(args[0], "MALLOC-STATS") &&
          !iequals(args[0], "PURGE")) {
        keys.push_back(args[1]);
      }
      return;
    case key_kind::first_and_store:
      append_range(args, 0, 1, keys);
      for (std::size_t i = 1; i + 1 < n; ++i) {
        if (iequals(args[i], "STORE") || iequals(args[i], "STOREDIST")) {
          keys.push_back(args[i + 1]);
          ++i;
        }
      }
      return;
    case key_kind::migrate:
      if (n >= 3 && !args[2].empty()) {
        keys.push_back(args[2]);
        return;
      }
      for (std::size_t i = 5; i < n; ++i) {
        if (iequals(args[i], "KEYS")) {
          append_range(args, i + 1, n, keys);
          return;
        }
      }
      return;
  }
}

bool is_broadcast_command(std::string_view name, std::span<const std::string_view> args) noexcept {
  if (iequals(name, "FLUSHALL") || iequals(name, "FLUSHDB")) {
    return true;
  }
  if (args.empty()) {
    return false;
  }
  if (iequals(name, "SCRIPT")) {
    return iequals(args[0], "LOAD") || iequals(args[0], "FLUSH");
  }
  if (iequals(name, "FUNCTION")) {
    return iequals(args[0], "LOAD") || iequals(args[0], "DELETE") || iequals(args[0], "FLUSH") ||
           iequals(args[0], "RESTORE");
  }
  return false;
}

bool is_shard_subscription_command(std::string_view name) noexcept {
  return iequals(name, "SSUBSCRIBE") || iequals(name, "SUNSUBSCRIBE");
}

bool is_multi_command(std::string_view name) noexcept {
  return iequals(name, "MULTI");
}

request_route route_request(const parsed_request& req) {
  request_route route;
  std::size_t subscriptions = 0, broadcasts = 0;
  for (std::size_t i = 0; i < req.size(); ++i) {
    if (is_shard_subscription_command(req.name(i))) {
      ++subscriptions;
    } else if (is_broadcast_command(req.name(i), req.args(i))) {
      ++broadcasts;
    }
  }
  if (subscriptions != 0) {
    route.type = subscriptions == req.size() ? request_route::kind::shard_subscription
                                             : request_route::kind::mixed_subscription;
    if (route.type == request_route::kind::mixed_subscription) {
      route.message = "SSUBSCRIBE/SUNSUBSCRIBE cannot share a request with other commands";
    }
    return route;
  }
  if (broadcasts != 0 && broadcasts == req.size()) {
    route.type = request_route::kind::broadcast;
    return route;
  }

  std::vector<std::string_view> keys;
  std::optional<std::uint16_t> slot;
  std::string_view first_key;
  for (std::size_t i = 0; i < req.size(); ++i) {
    keys.clear();
    command_keys(req.name(i), req.args(i), keys);
    for (std::string_view key : keys) {
      const std::uint16_t s = key_slot(key);
      if (!slot) {
        slot = s;
        first_key = key;
      } else if (*slot != s) {
        route.type = request_route::kind::cross_slot;
        route.message = "CROSSSLOT keys of one request hash to different slots: '" +
                        std::string(first_key) + "' (slot " + std::to_string(*slot) + ") and '" +
                        std::string(key) + "' (slot " + std::to_string(s) + ") in " +
                        std::string(req.name(i)) + "; use a hash tag ({...}) to keep them together";
        return route;
      }
    }
  }
  if (slot) {
    route.type = request_route::kind::slot;
    route.slot = *slot;
  }
  return route;
}

route_hint route_hint::for_key(std::string_view key) {
  return route_hint{key_slot(key)};
}

}  // namespace corvo::redis
