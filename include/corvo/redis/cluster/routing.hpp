#pragma once
// Where a request goes in a Redis Cluster: the keys of each command (by the command's key
// positions), their slots, and whether the request can go to one node at all. Plain code
// over a request's serialized payload, no I/O.
//
// Key positions (arguments counted after the command name):
//   most commands                the first argument (GET k, HSET k f v, XADD k ...)
//   DEL, MGET, EXISTS, WATCH, …  every argument
//   MSET, MSETNX                 every other argument (k v k v)
//   BLPOP, BRPOP, BZPOPMIN/MAX   every argument but the trailing timeout
//   RENAME, LMOVE, SMOVE, COPY … the first two
//   EVAL, EVALSHA, FCALL (+_RO)  the numkeys arguments after numkeys (argument 2)
//   ZUNION, ZINTER, LMPOP, …     after numkeys (argument 1 or 2, see the table)
//   XREAD, XREADGROUP            the first half of what follows STREAMS
//   SORT, GEORADIUS              the first, plus the one after STORE / STOREDIST
//   OBJECT, XINFO, XGROUP, MEMORY USAGE   the argument after the subcommand
//   SSUBSCRIBE, SPUBLISH, …      the shard channels (they hash like keys)
//   PING, INFO, CLUSTER, CLIENT, SCRIPT, MULTI, EXEC, PUBLISH, …  none: any node
// Commands not in the table are taken to have their key first: a keyless command routed by
// a wrong "key" still reaches a node that can run it.

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::redis {

/// A request payload split into commands: views into the payload, valid while it is.
struct parsed_request {
  struct command {
    std::size_t first_word = 0;  ///< index in `words` of the command name
    std::size_t word_count = 0;  ///< name included
    std::string_view bytes;      ///< the command's RESP bytes within the payload
  };
  std::vector<std::string_view> words;
  std::vector<command> commands;

  std::string_view name(std::size_t i) const { return words[commands[i].first_word]; }
  std::span<const std::string_view> args(std::size_t i) const {
    return std::span<const std::string_view>(words).subspan(commands[i].first_word + 1,
                                                            commands[i].word_count - 1);
  }
  std::size_t size() const noexcept { return commands.size(); }
};

/// Splits a serialized request (arrays of bulk strings, as `request::push` writes them).
/// Returns false, leaving `out` partly filled, when the payload is not of that form.
bool split_commands(std::string_view payload, parsed_request& out);

/// What kind of key positions a command has (see the file comment).
enum class key_kind {
  none,
  first,
  all,
  every_other,
  all_but_last,
  first_two,
  numkeys_at_1,       // numkeys is argument 1 (EVAL script numkeys k...)
  numkeys_at_0,       // ZUNION numkeys k...
  dest_then_numkeys,  // ZUNIONSTORE dest numkeys k...
  all_after_first,    // BITOP op dest k...
  after_streams,      // XREAD ... STREAMS k... id...
  second,             // OBJECT ENCODING k
  first_and_store,    // SORT k ... STORE dest
  migrate,            // MIGRATE host port key|"" db timeout ... KEYS k...
};

/// The key kind of a command name (any case).
key_kind command_key_kind(std::string_view name) noexcept;

/// Appends the keys (or shard channels) of one command to `keys`.
void command_keys(std::string_view name, std::span<const std::string_view> args,
                  std::vector<std::string_view>& keys);

/// True for SCRIPT LOAD/FLUSH, FUNCTION LOAD/DELETE/FLUSH/RESTORE, FLUSHALL, FLUSHDB:
/// commands that a cluster client sends to every master.
bool is_broadcast_command(std::string_view name, std::span<const std::string_view> args) noexcept;

/// True for SSUBSCRIBE and SUNSUBSCRIBE.
bool is_shard_subscription_command(std::string_view name) noexcept;

/// True for MULTI: a request holding a transaction is redirected as a whole.
bool is_multi_command(std::string_view name) noexcept;

/// How one request is routed.
struct request_route {
  enum class kind {
    /// No command has a key: any master can run it.
    any_node,
    /// Every key hashes to `slot`.
    slot,
    /// Keys hash to different slots; `message` names them.
    cross_slot,
    /// Only broadcast commands (SCRIPT LOAD, FLUSHALL, ...): every master.
    broadcast,
    /// Only SSUBSCRIBE / SUNSUBSCRIBE: the sharded pub/sub machinery takes it.
    shard_subscription,
    /// SSUBSCRIBE / SUNSUBSCRIBE mixed with other commands: refused.
    mixed_subscription,
  };
  kind type = kind::any_node;
  std::uint16_t slot = 0;
  std::string message;
};

/// Routes a parsed request by the keys of all its commands.
request_route route_request(const parsed_request& req);

/// The caller's explicit routing, overriding the keys found in a request: for scripts whose
/// keys are not declared, admin commands meant for one shard, or to pin a pipeline.
struct route_hint {
  std::optional<std::uint16_t> slot;

  /// Route to the owner of `key`'s slot.
  static route_hint for_key(std::string_view key);
  static route_hint for_slot(std::uint16_t slot) { return route_hint{slot}; }
};

}  // namespace corvo::redis
