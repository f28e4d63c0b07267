#pragma once
// The Lua scripts of deduplication by key (redis_store::schedule_deduplicated_by_key; the
// protocol is described in redis_store_dedup.cpp and docs/scheduler.md, "Deduplication by
// key"). A key's window lives in the key's own slot, `{ns:dedup:<key>}:window`, and
// holds 'TICKET ID' (the schedule that holds the window: a random ticket, unique to that
// call, and its task id); a task lives in its id's shard. A schedule's ticket marker,
// `{ns:s}:dedup:<ticket>` in the shard of its task id, is 'landed' once its schedule is
// written, or 'void' when a later schedule replaced it first (its own schedule then does
// nothing); it expires after the window plus a grace (redis_store_dedup.cpp).

namespace corvo::schedule::detail::lua {

// KEYS[1] the window; ARGV: 'TICKET ID', window_ms, mode ('replace' | 'drop'). No window:
// opens one holding ARGV[1] for window_ms, returns {'open'}. A window open: mode drop
// returns {'dropped'} (nothing changes); mode replace makes ARGV[1] the holder, the window's
// closing time unchanged, and returns {'swapped', previous holder}.
inline constexpr const char* dedup_window = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'open'}
end
if ARGV[3] == 'drop' then return {'dropped'} end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return {'swapped', holder}
)lua";

// KEYS[1] the window; ARGV: 'TICKET ID', window_ms. Restarts the window (open for window_ms
// from now) when ARGV[1] still holds it; returns 1 when it did.
inline constexpr const char* dedup_restart = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

// Shared by the two scripts below (appended to the prelude).
inline constexpr const char* dedup_helpers = R"lua(
-- Voids the schedule of `prev` (its ticket marker `marker`; in the shard of `keys`) for the
-- schedule of `own` that replaces it: a marker not yet written becomes 'void' (that
-- schedule, when it arrives, does nothing); a waiting task `prev` is removed (unless it is
-- `own`: that schedule's upsert replaces it). Returns 'removed' (it was waiting), 'blocked'
-- (its schedule had not arrived) or 'gone' (it arrived and is no longer waiting: it ran, is
-- in flight, dead or cancelled).
local function void_prev(keys, marker, prev, own, ttl)
  local mark = redis.call('GET', marker)
  if not mark then redis.call('SET', marker, 'void', 'PX', ttl) end
  if waits(keys, prev) then
    if prev ~= own then
      emit('cancelled', prev, evict(keys, prev), nil, 'deduplicated')
      redis.call('HDEL', keys[2], prev)
    end
    return 'removed'
  end
  if mark then return 'gone' end
  return 'blocked'
end
)lua";

// KEYS 1..13 (the task's shard), 14 the schedule's ticket marker, 15 (only with ARGV[6]) the
// marker of the schedule it replaces, whose task is in this shard; ARGV: id, due_us, record,
// events, marker_ttl_ms, the replaced schedule's task id (optional). Voids the replaced
// schedule first (void_prev), then writes the task as schedule does unless the schedule was
// voided already. Returns {'landed' | 'void', void_prev's result or ''}.
inline constexpr const char* dedup_schedule = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
events_on(ARGV[4])
local prev = ''
if ARGV[6] then prev = void_prev(KEYS, KEYS[15], ARGV[6], id, ARGV[5]) end
if not redis.call('SET', KEYS[14], 'landed', 'NX', 'PX', ARGV[5]) then return {'void', prev} end
store_task(KEYS, id, ARGV[3], due)
return {'landed', prev}
)lua";

// KEYS 1..13 (the replaced task's shard), 14 the replaced schedule's ticket marker; ARGV: the
// replaced task id, the replacing task id, marker_ttl_ms, events. void_prev, alone (the
// replacing task is in another shard). Returns its result.
inline constexpr const char* dedup_void = R"lua(
events_on(ARGV[4])
return void_prev(KEYS, KEYS[14], ARGV[1], ARGV[2], ARGV[3])
)lua";

}  // namespace corvo::schedule::detail::lua
