#pragma once
// Administration of Redis streams, their consumer groups and their dead-letter streams, on
// a `redis::client` (standalone or cluster: every call touches one stream's hash slot).
//
//   corvo::stream::admin streams(redis);
//   auto info = co_await streams.info("orders");                 // length, ids, groups
//   auto pel = co_await streams.pending("orders", "billing");    // XPENDING summary
//   auto dlq = corvo::stream::dead_letter_key("orders");         // "{orders}:dlq"
//   auto page = co_await streams.dead_letters(dlq);              // parsed per dead_letter.hpp
//   auto back = co_await streams.replay(dlq, page.entries.at(0).id);
//
// Failure rules: a missing stream, a key of another type, an unknown group, a malformed id
// throw boost::system::system_error with an `admin_error` code and a message naming the key.
// A dead letter that does not follow the layout of dead_letter.hpp is reported (listed as
// `malformed`, or a replay outcome `malformed`), never replayed, never deleted by a replay.
// Redis errors and connection failures propagate as the client throws them.
// Cancellation: each call is one or a few requests; a cancelled call leaves what it already
// did (a replay of all dead letters cancelled half-way has replayed a prefix, each entry
// either fully replayed or untouched).

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/stream/admin_error.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <corvo/stream/trim.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace corvo::stream {

namespace asio = boost::asio;

/// One field/value pair of an entry, in entry order.
using field_list = std::vector<std::pair<std::string, std::string>>;

/// An entry as stored, read by the admin calls (field/value pairs). The consumer's entry
/// type is stream::entry (entry.hpp), which also carries its stream and delivery count.
struct stored_entry {
  std::string id;
  field_list fields;
};

struct consumer_info {
  std::string name;
  std::uint64_t pending = 0;
  /// Milliseconds since the consumer's last attempted interaction (XINFO CONSUMERS idle).
  std::uint64_t idle_ms = 0;
  /// Milliseconds since its last successful read (Redis >= 7.2; unset before).
  std::optional<std::int64_t> inactive_ms;
};

struct group_info {
  std::string name;
  std::uint64_t consumers = 0;
  /// Entries delivered to the group and not yet acknowledged (its PEL).
  std::uint64_t pending = 0;
  std::string last_delivered_id;
  /// Entries the group has read (Redis >= 7.0); unset when Redis cannot tell.
  std::optional<std::uint64_t> entries_read;
  /// Entries not yet delivered to the group (Redis >= 7.0); unset when Redis cannot tell
  /// (e.g. after entries were deleted in the range the group has not read).
  std::optional<std::uint64_t> lag;
  /// Its consumers (filled by groups(), empty in info()).
  std::vector<consumer_info> consumer_list;
};

struct stream_info {
  std::string stream;
  std::uint64_t length = 0;
  /// Ids of the first and last entries; unset when the stream is empty.
  std::optional<std::string> first_id, last_id;
  /// The id of the last entry ever appended (stays after deletes and trims).
  std::string last_generated_id;
  /// Entries ever appended (Redis >= 7.0).
  std::optional<std::uint64_t> entries_added;
  std::vector<group_info> groups;
};

struct pending_summary {
  std::uint64_t count = 0;
  /// Lowest and highest pending ids; unset when nothing is pending.
  std::optional<std::string> lowest_id, highest_id;
  /// Pending entries per consumer (consumers with none are not listed).
  std::vector<std::pair<std::string, std::uint64_t>> per_consumer;
};

struct pending_entry {
  std::string id;
  std::string consumer;
  std::uint64_t idle_ms = 0;
  std::uint64_t deliveries = 0;
};

/// Which pending entries to list (XPENDING's extended form).
struct pending_query {
  std::string start = "-";
  std::string end = "+";
  std::size_t count = 100;
  /// Only this consumer's entries; empty: all.
  std::string consumer;
  /// Only entries idle at least this long; 0: all.
  std::chrono::milliseconds min_idle{0};
};

/// A dead letter, parsed per dead_letter.hpp.
struct dead_letter {
  /// Its id in the dead-letter stream.
  std::string id;
  std::string source_stream;
  std::string source_id;
  std::string group;
  std::string consumer;
  std::uint64_t deliveries = 0;
  std::string reason;
  /// When it was dead-lettered (Unix time, ms).
  std::int64_t at_ms = 0;
  /// The original entry's field/value pairs, unchanged.
  field_list fields;
};

/// An entry of a dead-letter stream that does not follow the layout.
struct malformed_dead_letter {
  std::string id;
  /// What is wrong ("has 3 fields; a dead letter has 7 metadata fields and ...").
  std::string problem;
  /// The entry as stored.
  field_list fields;
};

/// Parses one dead-letter-stream entry. Never throws on bad content.
std::variant<dead_letter, malformed_dead_letter> parse_dead_letter(stored_entry e);

struct dead_letter_page {
  std::vector<dead_letter> entries;
  std::vector<malformed_dead_letter> malformed;
  /// Pass as `after` for the next page; unset when this page was the last.
  std::optional<std::string> next;
};

enum class replay_status {
  replayed,   ///< appended to its source stream (new id) and deleted from the dead letters
  not_found,  ///< no dead letter with that id (already replayed or purged)
  malformed,  ///< not in the layout: left in place, `problem` says why
  refused,    ///< (replay_all only) the source key holds another type, or is in another
              ///< slot on a cluster: left in place, `problem` says why
};

std::string_view to_string(replay_status s) noexcept;

struct replay_outcome {
  /// The dead letter's id.
  std::string id;
  replay_status status = replay_status::not_found;
  std::string source_stream;
  /// With `replayed`: the id of the new entry in the source stream.
  std::string new_id;
  /// With `malformed`: what is wrong.
  std::string problem;
};

class admin {
 public:
  /// `redis` must outlive the admin and be running.
  explicit admin(redis::client& redis) noexcept : redis_(&redis) {}

  /// XINFO STREAM + XINFO GROUPS. Throws admin_error::no_such_stream / wrong_type.
  asio::awaitable<stream_info> info(std::string stream);

  /// The stream's groups, each with its consumers. Throws like info().
  asio::awaitable<std::vector<group_info>> groups(std::string stream);

  /// XPENDING summary of `group`. Throws like info(), and admin_error::no_such_group.
  asio::awaitable<pending_summary> pending(std::string stream, std::string group);

  /// The pending entries of `group` selected by `query`, in id order. Throws like
  /// pending(), and admin_error::bad_id for a bad start or end.
  asio::awaitable<std::vector<pending_entry>> pending_entries(std::string stream, std::string group,
                                                              pending_query query);

  /// Up to `count` entries of the dead-letter stream `dead_letter_stream` after id `after`
  /// ("-": from the start), parsed; malformed ones are listed apart, in the same id order.
  /// A missing dead-letter stream is an empty page. Throws admin_error::wrong_type, bad_id.
  asio::awaitable<dead_letter_page> dead_letters(std::string dead_letter_stream,
                                                 std::string after = "-", std::size_t count = 100);

  /// Replays dead letter `id`: in one script, appends its original pairs to its source
  /// stream and deletes it, so it is neither lost nor doubled. A malformed entry is left in
  /// place (status malformed). Throws admin_error::bad_id, admin_error::cross_slot (on a
  /// cluster, a source stream outside the dead-letter stream's slot), wrong_type (the source
  /// key holds another type: nothing changed).
  asio::awaitable<replay_outcome> replay(std::string dead_letter_stream, std::string id);

  /// Replays every dead letter present when the call starts (one script per entry, in id
  /// order; entries dead-lettered again meanwhile are not replayed a second time by this
  /// call). Malformed ones, and ones replay() would refuse with wrong_type or cross_slot,
  /// are left in place and reported (`malformed`, `refused`); the others still go. One
  /// outcome per entry.
  asio::awaitable<std::vector<replay_outcome>> replay_all(std::string dead_letter_stream);

  /// Deletes dead letter `id` (malformed or not); true when it existed.
  asio::awaitable<bool> purge(std::string dead_letter_stream, std::string id);

  /// Deletes every dead letter present when the call starts; returns how many.
  asio::awaitable<std::uint64_t> purge_all(std::string dead_letter_stream);

  /// Deletes the dead letters appended more than `age` ago (by their ids: the Redis clock
  /// when they were dead-lettered); returns how many.
  asio::awaitable<std::uint64_t> purge_older_than(std::string dead_letter_stream,
                                                  std::chrono::milliseconds age);

  /// safe_trim (trim.hpp) on this admin's client.
  asio::awaitable<trim_result> trim(std::string stream, trim_options options);

 private:
  redis::client* redis_;
};

}  // namespace corvo::stream
