#pragma once
// The Lua scripts of the Redis store. Every key a script touches is passed in KEYS and all
// keys of one call share the shard's hash tag, so each call touches one slot (Redis
// Cluster). Times come from the server's TIME, in microseconds; scores are µs since the
// epoch. Numbers returned to the client are formatted with %.0f (Lua 5.1's tostring would
// use 14 significant digits and lose microseconds).
//
// Common KEYS order: 1 due, 2 tasks, 3 inflight, 4 lease, 5 dead, 6 seq, 7 wake channel,
// 8 parked (due tasks of a paused type, set aside by a claim), 9 paused (set: '*' for the
// whole namespace, or task types), 10 due:high and 11 due:low (the due sets of the tasks of
// priority high and low; `due` holds the normal ones, so a namespace that uses no priority
// has the keys it had before them).
// Record layout: see include/corvo/schedule/detail/record.hpp.

namespace corvo::schedule::detail::lua {

// Helpers shared by the scripts (prepended to each).
inline constexpr const char* prelude = R"lua(
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%.0f', n) end
-- redis.call(cmd, key, args...) in chunks of `step` values (Lua's unpack has a limit): one
-- call per chunk instead of one per member. `step` is a multiple of the values per member.
local function call_many(cmd, key, args, step)
  for i = 1, #args, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end
-- HMGET in chunks: the values of `fields` in order (false where absent).
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end
-- Position of the n-th newline of a record.
local function nth_newline(rec, n)
  local pos = 0
  for _ = 1, n do
    pos = string.find(rec, '\n', pos + 1, true)
    if not pos then return nil end
  end
  return pos
end
local function with_attempts(rec, attempts)
  return tostring(attempts) .. string.sub(rec, nth_newline(rec, 1))
end
local function with_error(rec, err)
  local a, b = nth_newline(rec, 4), nth_newline(rec, 5)
  return string.sub(rec, 1, a) .. err .. string.sub(rec, b)
end
-- Sets the occurrence line (the 6th); a record of the older layout gets one.
local function with_occurrence(rec, occurrence)
  local a, b = nth_newline(rec, 5), nth_newline(rec, 6)
  if b then
    return string.sub(rec, 1, a) .. occurrence .. string.sub(rec, b)
  end
  return string.sub(rec, 1, a) .. occurrence .. '\n' .. string.sub(rec, a + 1)
end
-- attempts and max_attempts of a record; nil when its header does not parse (the five
-- header lines are needed by with_error too).
local function header(rec)
  local a, b = nth_newline(rec, 1), nth_newline(rec, 2)
  if not a or not b or not nth_newline(rec, 5) then return nil end
  local attempts = tonumber(string.match(string.sub(rec, 1, a - 1), '^%d+$'))
  local max = tonumber(string.match(string.sub(rec, a + 1, b - 1), '^(%d+)'))
  if not attempts or not max then return nil end
  return attempts, max
end
-- The error a lease expiry records, counting consecutive expiries.
local function expiry_error(rec)
  local last = string.sub(rec, nth_newline(rec, 4) + 1, nth_newline(rec, 5) - 1)
  local before = tonumber(string.match(last, '^lease expired (%d+) times %(worker died or hung%)$')) or 0
  return 'lease expired ' .. string.format('%d', before + 1) .. ' times (worker died or hung)'
end
-- Adds `id` to the dead-letter set, then caps the set by age, then by count (oldest first);
-- their records go too.
local function dead_letter(keys, id, now, max_count, max_age)
  redis.call('ZADD', keys[5], now, id)
  local old = redis.call('ZRANGEBYSCORE', keys[5], '-inf', now - max_age, 'LIMIT', 0, 1000)
  for _, dead in ipairs(old) do
    redis.call('ZREM', keys[5], dead)
    redis.call('HDEL', keys[2], dead)
  end
  local extra = redis.call('ZCARD', keys[5]) - max_count
  if extra > 0 then
    for _, dead in ipairs(redis.call('ZRANGE', keys[5], 0, extra - 1)) do
      redis.call('ZREM', keys[5], dead)
      redis.call('HDEL', keys[2], dead)
    end
  end
end
-- The task type of a record (its 3rd line).
local function type_of(rec)
  local a, b = nth_newline(rec, 2), nth_newline(rec, 3)
  if not a or not b then return nil end
  return string.sub(rec, a + 1, b - 1)
end
-- The priority level of a record (1 high, 0 normal, -1 low): ' p1' / ' p-1' on its 2nd line.
local function level_of(rec)
  if not rec then return 0 end
  local a, b = nth_newline(rec, 1), nth_newline(rec, 2)
  if not a or not b then return 0 end
  return tonumber(string.match(string.sub(rec, a + 1, b - 1), ' p(%-?%d)')) or 0
end
-- The due set of a record's priority.
local function due_key(keys, rec)
  local level = level_of(rec)
  if level > 0 then return keys[10] elseif level < 0 then return keys[11] end
  return keys[1]
end
-- The due sets, highest priority first, with their level.
local function due_levels(keys)
  return {{keys[10], 1}, {keys[1], 0}, {keys[11], -1}}
end
-- Removes `id` from the due sets; true when it was waiting in one.
local function unqueue(keys, id)
  local removed = false
  for _, l in ipairs(due_levels(keys)) do
    if redis.call('ZREM', l[1], id) == 1 then removed = true end
  end
  return removed
end
-- The earliest entry of the due sets: id, score (nil when all are empty).
local function head_of(keys)
  local id, score
  for _, l in ipairs(due_levels(keys)) do
    local h = redis.call('ZRANGE', l[1], 0, 0, 'WITHSCORES')
    if h[2] and (not score or tonumber(h[2]) < score) then id, score = h[1], tonumber(h[2]) end
  end
  return id, score
end
-- Adds `id` to the due set of its record's priority.
local function enqueue(keys, id, rec, due)
  redis.call('ZADD', due_key(keys, rec), due, id)
end
-- Wakes dispatchers when `due` is ahead of the shard's current head (or it is the head).
local function wake_if_head(keys, id, due)
  local head, score = head_of(keys)
  if head == id or head == nil or due <= score then
    redis.call('SPUBLISH', keys[7], fmt(due))
  end
end
)lua";

// KEYS 1..11; ARGV: id, due_us, record, if_absent ('1': keep an existing task with this id,
// whatever its state). Returns 1 when scheduled, 0 when an existing task was kept.
inline constexpr const char* schedule = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[2], id) == 1 then return 0 end
redis.call('HSET', KEYS[2], id, ARGV[3])
redis.call('ZREM', KEYS[8], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
unqueue(KEYS, id)
enqueue(KEYS, id, ARGV[3], due)
wake_if_head(KEYS, id, due)
return 1
)lua";

// KEYS 1..11; ARGV: id, record, dead_max_count, dead_max_age_us. Writes a dead task back as
// exported (redis_store::restore): the record as given, in the dead-letter set at the
// server's now (the dead-letter caps apply), out of every other set (every priority's).
inline constexpr const char* restore_dead = R"lua(
local id = ARGV[1]
redis.call('HSET', KEYS[2], id, ARGV[2])
unqueue(KEYS, id)
redis.call('ZREM', KEYS[8], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
dead_letter(KEYS, id, now_us(), tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
)lua";

// KEYS 1..11, 12 the id's deduplication window (a key that expires with the window); ARGV: id,
// due_us, record, window_ms, mode ('replace' | 'drop'). Returns 'scheduled' (as schedule;
// a new window opens), 'replaced' (window open, the waiting task took the new record and
// due time) or 'dropped' (window open, mode drop). See store::schedule_deduplicated.
inline constexpr const char* schedule_dedup = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[12]) == 1 then
  if ARGV[5] == 'drop' then return 'dropped' end
  if unqueue(KEYS, id) or redis.call('ZREM', KEYS[8], id) == 1 then
    redis.call('HSET', KEYS[2], id, ARGV[3])
    enqueue(KEYS, id, ARGV[3], due)
    wake_if_head(KEYS, id, due)
    return 'replaced'
  end
end
redis.call('SET', KEYS[12], '1', 'PX', ARGV[4])
redis.call('HSET', KEYS[2], id, ARGV[3])
redis.call('ZREM', KEYS[8], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
unqueue(KEYS, id)
enqueue(KEYS, id, ARGV[3], due)
wake_if_head(KEYS, id, due)
return 'scheduled'
)lua";

// KEYS 1..11; ARGV: limit, lease_ms, dead_max_count, dead_max_age_us, nonce (random, new
// for every call: a token is the shard's counter and the nonce, so a counter rolled back by a
// failover or a restart from an older snapshot never hands out a token again), aging_us (the
// priority boost per level: due tasks are taken in the order of due - level * aging, ties to
// the higher level; see task.hpp `priority`), ahead_us (also take tasks due up to now +
// ahead_us; the dispatcher starts them at their due time).
// Returns {now, next_due|'', next_lease|'', id1, token1, due1, record1, ...}.
// An expired lease makes its task due now, or dead when that try was its last
// ("lease expired N times (worker died or hung)"). A record whose header does not parse is
// dead-lettered (rewritten with the reason, the original kept as its payload). With the
// namespace paused nothing is claimed and no next due time is reported (resume wakes the
// dispatchers); a due task of a paused type moves to the parked set, still due.
inline constexpr const char* claim = R"lua(
local now = now_us()
local dead_max_count, dead_max_age = tonumber(ARGV[3]), tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', fmt(now), 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  local rec = redis.call('HGET', KEYS[2], id)
  local attempts, max
  if rec then attempts, max = header(rec) end
  if attempts then
    redis.call('HSET', KEYS[2], id, with_error(rec, expiry_error(rec)))
    if attempts >= max then
      dead_letter(KEYS, id, now, dead_max_count, dead_max_age)
    else
      enqueue(KEYS, id, rec, now)
    end
  elseif rec then
    redis.call('ZADD', KEYS[1], now, id)
  end
end
local out = {fmt(now), '', ''}
local limit = tonumber(ARGV[1])
local all_paused, paused_types = false, nil
for _, p in ipairs(redis.call('SMEMBERS', KEYS[9])) do
  if p == '*' then all_paused = true else
    paused_types = paused_types or {}
    paused_types[p] = true
  end
end
local claimed = 0
local aging = tonumber(ARGV[6]) or 0
local levels = due_levels(KEYS)
local deadline = fmt(now + tonumber(ARGV[2]) * 1000)
local horizon = fmt(now + (tonumber(ARGV[7]) or 0))
while limit > 0 and claimed < limit and not all_paused do
  local want = limit - claimed
  -- Up to `want` due entries of each level, merged by due - level * aging.
  local found, at, total, more = {}, {}, 0, false
  for l = 1, #levels do
    found[l] = redis.call('ZRANGEBYSCORE', levels[l][1], '-inf', horizon, 'WITHSCORES', 'LIMIT', 0, want)
    at[l] = 1
    total = total + #found[l] / 2
    if #found[l] == 2 * want then more = true end  -- this level may hold more due entries
  end
  -- The `want` first entries in merge order; the writes come after, one call per kind
  -- (a claim's cost is then a few calls plus its entries, not several calls per entry).
  local ids, scores, removed = {}, {}, {}
  for l = 1, #levels do removed[l] = {} end
  for _ = 1, want do
    local best, best_key
    for l = 1, #levels do
      local f = found[l]
      if at[l] <= #f then
        local key = tonumber(f[at[l] + 1]) - levels[l][2] * aging
        if not best or key < best_key then best, best_key = l, key end
      end
    end
    if not best then break end
    local id = found[best][at[best]]
    ids[#ids + 1] = id
    scores[#scores + 1] = found[best][at[best] + 1]
    removed[best][#removed[best] + 1] = id
    at[best] = at[best] + 2
  end
  if #ids == 0 then break end
  for l = 1, #levels do
    if #removed[l] > 0 then call_many('ZREM', levels[l][1], removed[l], 1000) end
  end
  local recs = hmget(KEYS[2], ids)
  local take, parked = {}, {}
  for k = 1, #ids do
    local id, rec = ids[k], recs[k]
    local attempts
    if rec then attempts = header(rec) end
    if rec and paused_types and paused_types[type_of(rec)] then
      parked[#parked + 1] = scores[k]
      parked[#parked + 1] = id
    elseif rec and not attempts then
      redis.call('HSET', KEYS[2], id, '0\n1\n\n\nmalformed task record (its header does not ' ..
        'parse); the original record is the payload\n' .. cjson.encode(rec))
      dead_letter(KEYS, id, now, dead_max_count, dead_max_age)
    elseif rec then
      take[#take + 1] = k
      recs[k] = with_attempts(rec, attempts + 1)
    end
  end
  if #parked > 0 then call_many('ZADD', KEYS[8], parked, 1000) end
  local n = #take
  if n > 0 then
    local last = redis.call('INCRBY', KEYS[6], n)  -- tokens last - n + 1 .. last, in order
    local records, leases, tokens = {}, {}, {}
    for j = 1, n do
      local k = take[j]
      local id, token = ids[k], (last - n + j) .. '.' .. ARGV[5]
      records[#records + 1] = id
      records[#records + 1] = recs[k]
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      tokens[#tokens + 1] = id
      tokens[#tokens + 1] = token
      out[#out + 1] = id
      out[#out + 1] = token
      out[#out + 1] = scores[k]
      out[#out + 1] = recs[k]
    end
    call_many('HSET', KEYS[2], records, 1000)
    call_many('ZADD', KEYS[3], leases, 1000)
    call_many('HSET', KEYS[4], tokens, 1000)
    claimed = claimed + n
  end
  if not more and total <= want then break end  -- every due entry was taken: none left
end
local _, head = head_of(KEYS)
if head and not all_paused then out[2] = fmt(head) end
local lease = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if lease[2] then out[3] = lease[2] end
return out
)lua";

// KEYS 1..11; ARGV: (id, token, next_due_us|'')... Returns the number acked. A next due
// time starts the next occurrence: the record's occurrence becomes it.
inline constexpr const char* ack = R"lua(
local ids = {}
for i = 1, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local held = hmget(KEYS[4], ids)
local acked, done, finished, seen = 0, {}, {}, {}
for k = 1, #ids do
  local i = 3 * k - 2
  local id, token, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if held[k] == token and not seen[id] then
    seen[id] = true
    done[#done + 1] = id
    if nxt ~= '' then
      local rec = redis.call('HGET', KEYS[2], id)
      if rec then
        redis.call('HSET', KEYS[2], id, with_occurrence(with_error(with_attempts(rec, 0), ''), nxt))
        if redis.call('ZADD', due_key(KEYS, rec), 'NX', nxt, id) == 1 then
          wake_if_head(KEYS, id, tonumber(nxt))
        end
      end
    else
      finished[#finished + 1] = id
    end
    acked = acked + 1
  end
end
if #done > 0 then
  call_many('ZREM', KEYS[3], done, 1000)
  call_many('HDEL', KEYS[4], done, 1000)
end
if #finished > 0 then call_many('HDEL', KEYS[2], finished, 1000) end
return acked
)lua";

// KEYS 1..11; ARGV: id, token, error, retry_us|'' (empty: dead-letter), dead_max_count,
// dead_max_age_us. Returns 1, or 0 for a stale token.
inline constexpr const char* nack = R"lua(
local id, token = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[4], id) ~= token then return 0 end
local now = now_us()
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return 1 end
redis.call('HSET', KEYS[2], id, with_error(rec, ARGV[3]))
if ARGV[4] ~= '' then
  local due = now + tonumber(ARGV[4])
  enqueue(KEYS, id, rec, due)
  wake_if_head(KEYS, id, due)
  return 1
end
dead_letter(KEYS, id, now, tonumber(ARGV[5]), tonumber(ARGV[6]))
return 1
)lua";

// KEYS 1..11; ARGV: lease_ms, (id, token)... Returns '1' (renewed) or '0' (not held) per lease.
inline constexpr const char* extend = R"lua(
local deadline = now_us() + tonumber(ARGV[1]) * 1000
local held = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[4], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[3], 'XX', deadline, ARGV[i])
    held[#held + 1] = '1'
  else
    held[#held + 1] = '0'
  end
end
return held
)lua";

// KEYS 1..11; ARGV: id. Returns 1 when the task existed.
inline constexpr const char* cancel = R"lua(
local id = ARGV[1]
unqueue(KEYS, id)
redis.call('ZREM', KEYS[8], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
return redis.call('HDEL', KEYS[2], id)
)lua";

// KEYS 1..11; ARGV: id, due_us. Returns 1 when a waiting task was moved (its occurrence
// moves with it).
inline constexpr const char* reschedule = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
if not unqueue(KEYS, id) and redis.call('ZREM', KEYS[8], id) == 0 then
  return 0
end
local rec = redis.call('HGET', KEYS[2], id)
if rec then redis.call('HSET', KEYS[2], id, with_occurrence(rec, ARGV[2])) end
enqueue(KEYS, id, rec, due)
wake_if_head(KEYS, id, due)
return 1
)lua";

// KEYS 1..11; ARGV: what ('*': the namespace, or a task type). Pauses it on this shard.
inline constexpr const char* pause = R"lua(
redis.call('SADD', KEYS[9], ARGV[1])
return 1
)lua";

// KEYS 1..11; ARGV: what ('*' or a task type). Lifts the pause on this shard, moves the
// parked tasks of that type back to the due set (their due times unchanged) and wakes the
// dispatchers. Returns the number moved back.
inline constexpr const char* resume = R"lua(
redis.call('SREM', KEYS[9], ARGV[1])
local moved = 0
if ARGV[1] ~= '*' then
  local parked = redis.call('ZRANGE', KEYS[8], 0, -1, 'WITHSCORES')
  for i = 1, #parked, 2 do
    local rec = redis.call('HGET', KEYS[2], parked[i])
    if not rec or type_of(rec) == ARGV[1] then
      redis.call('ZREM', KEYS[8], parked[i])
      if rec then
        enqueue(KEYS, parked[i], rec, parked[i + 1])
        moved = moved + 1
      end
    end
  end
end
local _, head = head_of(KEYS)
if head then redis.call('SPUBLISH', KEYS[7], fmt(head)) end
return moved
)lua";

// KEYS 1..11; ARGV: id. Returns 1 when a dead task went back to due (attempts reset).
inline constexpr const char* replay = R"lua(
local id = ARGV[1]
if redis.call('ZREM', KEYS[5], id) == 0 then return 0 end
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return 0 end
local now = now_us()
redis.call('HSET', KEYS[2], id, with_attempts(rec, 0))
enqueue(KEYS, id, rec, now)
wake_if_head(KEYS, id, now)
return 1
)lua";

// KEYS 1..11; ARGV: id|'' (empty: every dead task). Returns the number deleted.
inline constexpr const char* purge = R"lua(
local ids
if ARGV[1] ~= '' then
  if not redis.call('ZSCORE', KEYS[5], ARGV[1]) then return 0 end
  ids = {ARGV[1]}
else
  ids = redis.call('ZRANGE', KEYS[5], 0, -1)
end
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ids
)lua";

}  // namespace corvo::schedule::detail::lua
