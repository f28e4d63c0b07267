#pragma once
// The task record as the Redis store keeps it in `{ns:s}:tasks` (one hash field per task):
//
//   <attempts>\n<max_attempts><options>\n<type>\n<recurrence>\n<last_error>\n
//   [<occurrence µs>\n]<payload JSON>
//
// <options>, each after a space, only when set: the run timeout in ms (a bare number), ` p1`
// (high) or ` p-1` (low) priority, the task's own retry backoff (` r1000:60000:2:1`:
// initial ms, max ms, multiplier, jitter), its W3C trace context (` t00-<trace id>-<parent
// id>-<flags>`, no space in it), and, while the task is leased with a lease written into the
// record (redis_store_options::compatible_leases, a cluster's limited types, older versions),
// the lease's fencing token (` k<token>`, written and removed by the scripts: the prelude's
// leases in src/schedule/redis_script_prelude.hpp). A normal task's record has none (no byte more per task),
// records written before an option existed still decode, and the scripts read max_attempts
// as the line's leading number. The payload JSON never contains a raw newline (Boost.JSON
// escapes them), so a record without the occurrence line (5 header lines) is recognised by
// its newline count and decodes with no occurrence (the caller uses the due time): records
// of the older layout, and a waiting task's record whose occurrence is its due time
// (encode_waiting_record: 17 bytes less per task).
//
// Compact (no field names: the memory target is bytes per task) and editable by the Lua
// scripts, which touch only the header lines (attempts, lease token, last error, occurrence)
// and never re-encode the payload. The due time is the score in `{ns:s}:due`, not part of
// the record. Type and recurrence may not contain a newline (checked when scheduling);
// newlines in an error text are replaced by spaces.

#include <corvo/schedule/task.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corvo::schedule::detail {

/// Encodes the stored fields of `t`. Throws std::invalid_argument for a type containing a
/// newline, an empty type or an invalid traceparent.
std::string encode_record(const task& t);

/// encode_record for a task about to wait in a due set with score `t.due`: when its
/// occurrence is its due time, the occurrence line is left out (17 bytes less per waiting
/// task; a record without it decodes with no occurrence and the due time stands for it). A
/// retry or a lease expiry writes the line (the due time the task was claimed at, which a
/// lease kept in its token carries) before it moves the due time away from the occurrence; a
/// claim that writes its lease into the record writes it then.
std::string encode_waiting_record(const task& t);

/// Decodes a record into `t` (all fields but id, due and state; `occurrence` stays as it
/// was for a record of the older layout). Throws
/// std::invalid_argument when the record is malformed or its payload is not JSON.
void decode_record(std::string_view record, task& t);

/// The lease token a record carries (` k<token>` on its 2nd line), empty when it carries none
/// or has no 2nd line.
std::string_view lease_token_of(std::string_view record) noexcept;

/// The due time (µs since the epoch) a lease token carries when the lease is kept in its token
/// ('<counter>.<nonce>.<due>': the claim left the record as it was; redis_scripts.hpp, the
/// prelude's leases), nullopt for a lease written into the record ('<counter>.<nonce>',
/// '<counter>.<nonce>@<type hex>': the record carries the try) or a token of neither shape.
std::optional<std::int64_t> token_due(std::string_view token) noexcept;

/// Completes `t`, decoded from the record of a task leased with `token`, with what a lease
/// kept in its token holds beyond the record: the try (one more attempt than the record
/// counts) and, when the record has no occurrence line, the due time it was claimed at.
/// Nothing for a lease written into the record.
void apply_lease(std::string_view token, task& t) noexcept;

/// `text` with newlines replaced by spaces (error texts stored in a record line).
std::string one_line(std::string_view text);

}  // namespace corvo::schedule::detail
