#pragma once
// The Lua scripts of limits on a Redis Cluster (redis_store_limits.cpp; docs/scheduler.md
// "Limits"). A limited type's permits live in its own slot, `{ns:limit:<type>}`, and a
// shard's tasks in the shard's, so a claim cannot take both in one script. On a cluster the
// shard's claim script holds back every due task of a limited type (redis_scripts.hpp,
// `claim`, which then reports the held count per type), and the store takes permits in
// steps, each one atomic script on one slot:
//
//   acquire (the type's slot)   up to `want` permits: tokens '<counter>.<nonce>@<type in hex>'
//   start_held (the shard)      up to that many held tasks of the type into flight, with
//                               those tokens as their lease tokens; the unused ones back,
//                               and how many tasks of the type the shard still holds
//   release (the type's slot)   permits given back ('unused': running and starts; a start
//                               that did not happen does not count) or ended ('ended': the
//                               ack or nack of a run: running only)
//   renew (the type's slot)     a renewed lease's permit gets the same deadline
//
// Keys of a type, besides `running` and `starts` (as on a standalone server): `seq` (the
// permit token counter), `waiting` (sorted set: shard prefix `{ns:s}:` -> until when it waits
// for a permit, µs; an entry past its time is dropped) and `waiting:seq` (hash: shard prefix
// -> the counter value of its last registration). A claim that empties its shard's held set
// removes the shard's registration only when it was made before the claim's acquire or was
// checked (start_held, recorded in the shard's `{ns:s}:waits`) before the shard was emptied:
// a later one belongs to a claim that held new tasks meanwhile. A release that frees a permit
// publishes a random waiting shard's prefix on the type's shard channel `{ns:limit:<type>}:
// wake` (same slot, same script: no step between the release and the wake-up); the stores'
// wake-up watches map it to the shard and wake it.

namespace corvo::schedule::detail::lua {

// How long after its permit time a refused shard stays registered as waiting (µs): its
// dispatcher claims again at that time at the latest, and registers again when still refused.
inline constexpr const char* limit_helpers = R"lua(
local waiting_grace_us = 1000000
-- Drops the waiting registrations whose time has passed (KEYS waiting, waiting:seq).
local function expire_waiting(waiting, since, now)
  for _, p in ipairs(redis.call('ZRANGEBYSCORE', waiting, '-inf', fmt(now), 'LIMIT', 0, 100)) do
    redis.call('ZREM', waiting, p)
    redis.call('HDEL', since, p)
  end
end
)lua";

// KEYS: running, starts, seq, waiting, waiting:seq. ARGV: want, starts per window (0: no
// rate), window_us, concurrency (0: none), lease_ms, nonce, the type in hex, shard prefix.
// Takes up to `want` permits (free_permits, as the standalone claim counts them):
// a token '<counter>.<nonce>@<type in hex>' each (no space: a lease token is one word of the
// record and of the leased set's member), in running (deadline now + lease) and starts (now).
// Fewer than `want`: the shard registers as waiting (until permit_at + grace) and permit_at
// is the earliest time a permit may free. Returns {now, permit_at|'', counter value after
// this call, '1' when the shard is registered as waiting after it else '0', tokens...}.
inline constexpr const char* limit_acquire = R"lua(
local now = now_us()
local want, n, per, m = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local free = math.min(want, (free_permits(KEYS[1], KEYS[2], n, per, m, now)))
local out = {fmt(now), '', '', '0'}
if free > 0 then
  local first = redis.call('INCRBY', KEYS[3], free) - free
  local deadline = fmt(now + tonumber(ARGV[5]) * 1000)
  local running, starts = {}, {}
  for j = 1, free do
    local token = string.format('%d', first + j) .. '.' .. ARGV[6] .. '@' .. ARGV[7]
    running[2 * j - 1], running[2 * j] = deadline, token
    starts[2 * j - 1], starts[2 * j] = fmt(now), token
    out[#out + 1] = token
  end
  if m > 0 then call_chunked('ZADD', KEYS[1], running) end
  if n > 0 then call_chunked('ZADD', KEYS[2], starts) end
end
if free < want then
  -- A limit ran out: the earliest time a permit may free now that these are taken.
  local _, at = free_permits(KEYS[1], KEYS[2], n, per, m, now)
  at = at or now
  out[2] = fmt(at)
  local v = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[4], 'GT', fmt(at + waiting_grace_us), ARGV[8])
  redis.call('HSET', KEYS[5], ARGV[8], v)
end
out[3] = redis.call('GET', KEYS[3]) or '0'
if redis.call('ZSCORE', KEYS[4], ARGV[8]) then out[4] = '1' end
return out
)lua";

// KEYS 1..13 (the shard's, redis_scripts.hpp), 14 `{ns:s}:waits` (hash: type -> the highest
// counter value of a waiting registration of this shard that a claim found still holding
// tasks); ARGV: type, lease_ms, events, the claim's counter value when its shard is
// registered as waiting ('' when not), tokens...
// Moves up to #tokens held tasks of `type` (the claim's order) into flight, each with the
// next token as its lease token (the record's token and the leased set's member; attempts
// counted, `started` emitted), as the claim does.
// With the namespace paused nothing moves; with the type paused its held tasks are set
// aside in the parked set (resume brings them back), as a claim sets aside due ones.
// Tasks left: a registered claim's counter value is recorded in `waits`. None left: `waits`
// of the type is taken (returned and deleted): every registration up to it was checked
// before this claim emptied the shard, so the claim may remove it (limit_release).
// Returns {now, held tasks of the type left, earliest lease deadline|'', events written
// (ev_tally), the `waits` taken|'', U, the U unused tokens, then (id, token, due, record) per
// task started}.
inline constexpr const char* limit_start_held = R"lua(
local now = now_us()
events_on(ARGV[3], now)
local t = ARGV[1]
local held = held_key(KEYS, t)
local tokens = {}
for i = 5, #ARGV do tokens[#tokens + 1] = ARGV[i] end
local started = {}
local used = 0
local paused = redis.call('SISMEMBER', KEYS[9], '*') == 1
if not paused and redis.call('SISMEMBER', KEYS[9], t) == 1 then
  for _, id in ipairs(redis.call('ZRANGE', held, 0, 999)) do
    local due = redis.call('ZSCORE', KEYS[12], id)
    redis.call('ZREM', held, id)
    redis.call('ZREM', KEYS[12], id)
    if due then redis.call('ZADD', KEYS[8], due, id) end
  end
  paused = true
end
if not paused and #tokens > 0 then
  local deadline = fmt(now + tonumber(ARGV[2]) * 1000)
  for _, id in ipairs(redis.call('ZRANGE', held, 0, #tokens - 1)) do
    redis.call('ZREM', held, id)
    local due = redis.call('ZSCORE', KEYS[12], id)
    redis.call('ZREM', KEYS[12], id)
    local rec = redis.call('HGET', KEYS[2], id)
    local attempts, max_attempts, options_end, body
    if rec then attempts, max_attempts, options_end, body = header(rec) end
    if due and attempts then
      used = used + 1
      attempts = attempts + 1
      rec = claimed_record(rec, attempts, tokens[used], options_end, body, due)
      redis.call('HSET', KEYS[2], id, rec)
      redis.call('ZADD', leased_key(KEYS), deadline, id .. ' ' .. tokens[used])
      emit('started', id, rec, attempts)
      started[#started + 1] = {id, tokens[used], due, rec}
    elseif rec then
      enqueue(KEYS, id, rec, due or fmt(now))  -- unreadable: the next claim dead-letters it
    end
  end
end
local left = redis.call('ZCARD', held)
local taken = ''
if left > 0 then
  if ARGV[4] ~= '' then
    local known = tonumber(redis.call('HGET', KEYS[14], t) or '0')
    if tonumber(ARGV[4]) > known then redis.call('HSET', KEYS[14], t, ARGV[4]) end
  end
else
  taken = redis.call('HGET', KEYS[14], t) or ''
  redis.call('HDEL', KEYS[14], t)
end
local out = {fmt(now), tostring(left), next_lease(KEYS) or '', ev_tally(), taken,
  tostring(#tokens - used)}
for i = used + 1, #tokens do out[#out + 1] = tokens[i] end
for _, s in ipairs(started) do
  for _, v in ipairs(s) do out[#out + 1] = v end
end
return out
)lua";

// KEYS: running, starts, waiting, waiting:seq, the type's wake channel. ARGV: mode
// ('unused': permits a claim took and did not use, out of running and starts; 'ended': the
// permits of runs that ended, out of running), the shard prefix to unregister from waiting
// ('' for none; only when its registration's counter value is <= ARGV[3]: see above),
// ARGV[3], tokens...
// A permit freed wakes a random waiting shard: its prefix published on the wake channel.
// Returns the number of permits freed.
inline constexpr const char* limit_release = R"lua(
local now = now_us()
local freed = 0
for i = 4, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  freed = freed + redis.call('ZREM', KEYS[1], unpack(ARGV, i, last))
  if ARGV[1] == 'unused' then freed = freed + redis.call('ZREM', KEYS[2], unpack(ARGV, i, last)) end
end
if ARGV[2] ~= '' then
  local v = tonumber(redis.call('HGET', KEYS[4], ARGV[2]))
  if v and v <= tonumber(ARGV[3]) then
    redis.call('ZREM', KEYS[3], ARGV[2])
    redis.call('HDEL', KEYS[4], ARGV[2])
  end
end
if freed > 0 then
  expire_waiting(KEYS[3], KEYS[4], now)
  local p = redis.call('ZRANDMEMBER', KEYS[3])
  if p then redis.call('SPUBLISH', KEYS[5], p) end
end
return freed
)lua";

// KEYS: running. ARGV: lease_ms, tokens... Each token's permit (if still held) gets the
// deadline now + lease. Returns the number renewed.
inline constexpr const char* limit_renew = R"lua(
local deadline = fmt(now_us() + tonumber(ARGV[1]) * 1000)
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return renewed
)lua";

}  // namespace corvo::schedule::detail::lua
