#pragma once
// The helpers every Lua script of the Redis store starts with (redis_scripts.hpp and the
// deduplication and limit scripts append their bodies to `prelude`). The conventions they
// share (KEYS order, times, events, limits, leases) are in redis_scripts.hpp's header.

namespace corvo::schedule::detail::lua {

// Helpers shared by the scripts (prepended to each).
inline constexpr const char* prelude = R"lua(
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%.0f', n) end
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
-- attempts and max_attempts of a record, the position of its 2nd newline (where its options
-- line ends) and the position after its 5th (its occurrence line, when it has one, then the
-- payload); nil when its header does not parse (the five header lines are needed by
-- with_error too). One match: the claim parses every record it takes.
local function header(rec)
  local attempts, max, options_end, body =
    string.match(rec, '^(%d+)\n(%d+)[^\n]*()\n[^\n]*\n[^\n]*\n[^\n]*\n()')
  if not attempts then return nil end
  return tonumber(attempts), tonumber(max), options_end, body
end
-- True when header() parses `rec` (the same shape, without its captures: cheaper).
local function well_formed(rec)
  return string.find(rec, '^%d+\n%d+[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n') ~= nil
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
-- `cmd key args...` in calls of at most 1000 arguments (Lua's unpack has a limit), for the
-- variadic writes of a batch (pairs stay whole: 1000 is even).
local function call_chunked(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
-- HMGET of `key` for the ids, in calls of at most 1000 fields; false for a missing field.
local function hmget_chunked(key, ids)
  if #ids <= 1000 then return redis.call('HMGET', key, unpack(ids)) end
  local out = {}
  for i = 1, #ids, 1000 do
    for _, v in ipairs(redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))) do
      out[#out + 1] = v
    end
  end
  return out
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
-- The held set of a limited type in this shard, and the shard's key prefix '{ns:s}:'.
local function held_key(keys, type) return keys[12] .. ':' .. type end
local function shard_prefix(keys) return string.sub(keys[7], 1, -5) end
-- Leases: the shard's `leased` set holds '<id> <token>' -> lease deadline. Removing the member is
-- the fencing check of an ack or nack: no token is looked up. A token is one of two kinds:
-- * '<counter>.<nonce>.<due>', a lease kept in its token (what a claim writes unless
--   compatible leases are on): the claim leaves the record as it was, so it holds the
--   attempts before this try (the try is one more), and the occurrence, when the record has no
--   occurrence line, is `due`, the due time the task was claimed at. A schedule, cancel or
--   restore of the id finds the member by its id (lease_member_of: a scan of the small set).
-- * any other ('<counter>.<nonce>', '<counter>.<nonce>@<type hex>'), a lease written into the
--   record: the claim wrote the try's attempts, the occurrence line and ' k<token>' on the
--   options line (compatible leases, a cluster's limited tasks, older versions).
-- The `inflight` set (id -> deadline) and `lease` hash (id -> token), KEYS[3] and KEYS[4],
-- hold the leases taken by older versions still: read and cleared, never written.
local function leased_key(keys) return shard_prefix(keys) .. 'leased' end
-- The due time a lease kept in its token carries (a string), nil for a lease written into the
-- record.
local function token_due(token) return string.match(token, '^%d+%.%x+%.(%d+)$') end
-- The lease token a record carries (nil when it carries none).
local function token_of(rec)
  local a = string.find(rec, '\n', 1, true)
  local b = a and string.find(rec, '\n', a + 1, true)
  if not b then return nil end
  return string.match(string.sub(rec, a + 1, b - 1), ' k(%S+)')
end
-- `rec` with `attempts` and, unless `token` is nil, the lease token `token` (any earlier
-- token dropped). Its first two lines must exist.
local function with_lease(rec, attempts, token)
  local a, b = nth_newline(rec, 1), nth_newline(rec, 2)
  local line = string.sub(rec, a + 1, b - 1)
  if string.find(line, ' k', 1, true) then line = (string.gsub(line, ' k%S+', '')) end
  if token then line = line .. ' k' .. token end
  return attempts .. '\n' .. line .. string.sub(rec, b)
end
-- The record of a task the claim takes, as a lease written into the record stores it:
-- `attempts`, the lease `token` (none when nil), and the occurrence line when the record has
-- none (a waiting task whose occurrence is its due time is stored without it:
-- encode_waiting_record): `due`, the due time it is claimed at. `options_end`, `body`:
-- header()'s positions.
local function claimed_record(rec, attempts, token, options_end, body, due)
  local a = string.find(rec, '\n', 1, true)
  local options = string.sub(rec, a, options_end - 1)
  if string.find(options, ' k', 1, true) then options = (string.gsub(options, ' k%S+', '')) end
  if token then options = options .. ' k' .. token end
  local tail = string.sub(rec, body)
  if not string.find(tail, '\n', 1, true) then tail = due .. '\n' .. tail end
  return attempts .. options .. string.sub(rec, options_end, body - 1) .. tail
end
-- `rec` without its lease token (unchanged when it carries none or does not parse).
local function without_lease(rec)
  local a, b = nth_newline(rec, 1), nth_newline(rec, 2)
  if not a or not b or not string.find(string.sub(rec, a + 1, b - 1), ' k', 1, true) then
    return rec
  end
  return with_lease(rec, string.sub(rec, 1, a - 1), nil)
end
-- The record of a task as of the try its lease `token` started, without a token: what a nack
-- or an expiry writes its error into. Unchanged when its header does not parse.
local function lease_record(rec, token)
  local due = token_due(token)
  if not due then return without_lease(rec) end
  local attempts, _, options_end, body = header(rec)
  if not attempts then return rec end
  return claimed_record(rec, attempts + 1, nil, options_end, body, due)
end
-- The attempts of the try a lease `token` of the record `rec` started (0 when its header
-- does not parse).
local function lease_attempts(rec, token)
  local attempts = rec and header(rec)
  if not attempts then return 0 end
  if token_due(token) then return attempts + 1 end
  return attempts
end
-- The leased set's member and deadline of a lease of `id` (nil when it has none), found by a
-- scan of the set (it holds only the tasks in flight).
local function lease_member_of(keys, id)
  local leased = leased_key(keys)
  local pattern = string.gsub(id, '[%*%?%[%]\\]', '\\%0') .. ' *'
  local cursor = '0'
  repeat
    local page = redis.call('ZSCAN', leased, cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do
      local member = page[2][i]
      if string.match(member, '^(.*) %S+$') == id then return member, page[2][i + 1] end
    end
  until cursor == '0'
  return nil
end
-- Ends any lease of `id` (its record `rec`, false when none): the run in flight is fenced
-- off. The caller rewrites or removes the record. Call it only when the task is not waiting
-- (not in a due, parked, held or dead set): a waiting task has no lease, and the scan for a
-- lease kept in its token is then saved.
local function drop_lease(keys, id, rec)
  if not rec then return end
  local token = token_of(rec)
  local member = token and (id .. ' ' .. token) or lease_member_of(keys, id)
  if member then redis.call('ZREM', leased_key(keys), member) end
  redis.call('ZREM', keys[3], id)
  redis.call('HDEL', keys[4], id)
end
-- The earliest lease deadline of the shard (a string), or nil.
local function next_lease(keys)
  local a = redis.call('ZRANGE', leased_key(keys), 0, 0, 'WITHSCORES')[2]
  local b = redis.call('ZRANGE', keys[3], 0, 0, 'WITHSCORES')[2]
  if a and b and tonumber(b) < tonumber(a) then return b end
  return a or b
end
-- Takes `id` out of the held sets (call before its record changes); true when it was held.
local function unhold(keys, id)
  if redis.call('ZREM', keys[12], id) == 0 then return false end
  local rec = redis.call('HGET', keys[2], id)
  local t = rec and type_of(rec)
  if t then redis.call('ZREM', held_key(keys, t), id) end
  return true
end
-- The permits of a type's limits free now, expired ones dropped first (`running`: concurrency
-- permits -> lease deadline, `m` at once, 0 for none; `starts`: the rate log -> start time, `n`
-- per `per` µs, 0 for no rate), and, when none is, the earliest time one may be: both limits
-- must allow a start. 1e18 free when neither limit is set. The claim (standalone) and the
-- cluster's acquire (redis_limit_scripts.hpp) count permits with it.
local function free_permits(running, starts, n, per, m, now)
  local free, at = 1e18, nil
  if m > 0 then
    redis.call('ZREMRANGEBYSCORE', running, '-inf', fmt(now))
    free = m - redis.call('ZCARD', running)
    if free <= 0 then at = tonumber(redis.call('ZRANGE', running, 0, 0, 'WITHSCORES')[2]) end
  end
  if n > 0 then
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', fmt(now - per))
    local left = n - redis.call('ZCARD', starts)
    if left < free then free = left end
    if left <= 0 then
      local t = tonumber(redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')[2]) + per
      if not at or t > at then at = t end
    end
  end
  if free <= 0 then return 0, at end
  return free, nil
end
-- Releases the concurrency permit of `token` (if `running` holds it) and wakes one shard
-- that holds tasks of `type` back (a random one; shards that no longer hold any are dropped
-- from `waiting` on the way).
local function release(running, waiting, type, token)
  if redis.call('ZREM', running, token) == 0 then return end
  for _ = 1, 8 do
    local p = redis.call('SRANDMEMBER', waiting)
    if not p then return end
    if redis.call('EXISTS', p .. 'held:' .. type) == 1 then
      redis.call('SPUBLISH', p .. 'wake', 'permit')
      return
    end
    redis.call('SREM', waiting, p)
  end
end
-- Task events: events_on(ARGV[n]) reads the script's events argument ('0': off); emit()
-- appends one event to KEYS[13] (nothing when off) and counts it in ev_n; ev_tally() is that
-- count for the caller's metric (event_counts.hpp). ev_now: the event time, read once.
local ev_max, ev_source, ev_now
local ev_index = {scheduled = 1, started = 2, succeeded = 3, failed = 4, dead = 5, cancelled = 6}
local ev_n = {0, 0, 0, 0, 0, 0}
-- The events this call wrote, by kind in event_kind's order ('' when events are off).
local function ev_tally()
  if not ev_max then return '' end
  return table.concat(ev_n, ' ')
end
local function events_on(arg, now)
  if not arg or arg == '0' or arg == '' then return end
  ev_max, ev_source = string.match(arg, '^(%d+) (.*)$')
  ev_now = now
end
local function emit(kind, id, rec, attempt, reason, due)
  if not ev_max then return end
  if not ev_now then ev_now = now_us() end
  local a = {'XADD', KEYS[13], 'MAXLEN', '~', ev_max, '*', 'k', kind, 'i', id,
    'y', (rec and type_of(rec)) or '', 't', fmt(ev_now)}
  if attempt then a[#a + 1] = 'a'; a[#a + 1] = string.format('%d', attempt) end
  if reason and reason ~= '' then a[#a + 1] = 'r'; a[#a + 1] = reason end
  if due then a[#a + 1] = 'd'; a[#a + 1] = fmt(due) end
  a[#a + 1] = 'w'
  a[#a + 1] = ev_source
  redis.call(unpack(a))
  ev_n[ev_index[kind]] = ev_n[ev_index[kind]] + 1
end
-- The attempts of a record (0 when its header does not parse).
local function attempts_of(rec)
  local attempts = rec and header(rec)
  return attempts or 0
end
-- Wakes dispatchers when `due` is ahead of the shard's current head (or it is the head).
local function wake_if_head(keys, id, due)
  local head, score = head_of(keys)
  if head == id or head == nil or due <= score then
    redis.call('SPUBLISH', keys[7], fmt(due))
  end
end
-- The compact tier (redis_store_options::compact): a task scheduled to run later than
-- compact_after µs from now waits in one of the shard's 1024 buckets, chosen by a hash of its
-- id: `compact:<b>` (hash: id -> record) and `compact:<b>:due` (sorted set: id -> due), each
-- small enough for Redis's listpack encoding (no per-entry allocations), and
-- `compact:index` orders the buckets (bucket -> the earliest due in it). Nothing else holds
-- such a task: the claim moves the tasks due within compact_after into the due sets first
-- (compact_promote), so claims, leases and acks never see a bucket. The tier is read
-- whatever this process's setting (another process may have written it); compact_on only
-- decides where this process stores new tasks. compact_on and compact_after are set by the
-- line the store puts before the prelude (redis_store_impl.hpp, script_settings).
local compact_buckets = 1024
local function compact_index(keys) return shard_prefix(keys) .. 'compact:index' end
local c_last_id, c_last_bucket  -- the last id's bucket: a call often asks twice
local function compact_bucket(id)
  if id ~= c_last_id then
    c_last_id = id
    c_last_bucket = tonumber(string.sub(redis.sha1hex(id), 1, 4), 16) % compact_buckets
  end
  return c_last_bucket
end
local function compact_keys(keys, b)
  local k = shard_prefix(keys) .. 'compact:' .. b
  return k, k .. ':due'
end
local c_exists  -- whether the shard has a compact tier (its index exists), read once a call
local function compact_used(keys)
  if c_exists == nil then c_exists = redis.call('EXISTS', compact_index(keys)) == 1 end
  return c_exists
end
-- The record and due time (a string) of `id` when it waits in the compact tier, else nil.
local function compact_get(keys, id)
  if not compact_used(keys) then return nil end
  local rk, dk = compact_keys(keys, compact_bucket(id))
  local rec = redis.call('HGET', rk, id)
  if not rec then return nil end
  return rec, redis.call('ZSCORE', dk, id)
end
-- Sets bucket `b`'s index entry to its earliest due time (none when it is empty).
local function compact_reindex(keys, b, dk)
  local h = redis.call('ZRANGE', dk, 0, 0, 'WITHSCORES')
  if h[2] then
    redis.call('ZADD', compact_index(keys), h[2], b)
  else
    redis.call('ZREM', compact_index(keys), b)
  end
end
-- Takes `id` out of the compact tier; its record when it waited there, else nil.
local function compact_del(keys, id)
  if not compact_used(keys) then return nil end
  local b = compact_bucket(id)
  local rk, dk = compact_keys(keys, b)
  local rec = redis.call('HGET', rk, id)
  if not rec then return nil end
  redis.call('HDEL', rk, id)
  redis.call('ZREM', dk, id)
  compact_reindex(keys, b, dk)
  return rec
end
-- The earliest due time in the compact tier (a number), nil when it is empty.
local function compact_head(keys)
  if not compact_used(keys) then return nil end
  local h = redis.call('ZRANGE', compact_index(keys), 0, 0, 'WITHSCORES')
  return h[2] and tonumber(h[2])
end
-- When the shard's dispatchers should claim next for what waits: the earliest due time of the
-- due sets, or compact_after before the compact tier's earliest (its promotion), whichever
-- comes first (a number; nil when nothing waits).
local function next_wake(keys)
  local _, head = head_of(keys)
  local c = compact_head(keys)
  if c then
    c = c - compact_after
    if not head or c < head then return c end
  end
  return head
end
-- Stores waiting task `id` in the compact tier (it is in no other set) and wakes the
-- dispatchers when its move comes before their next claim (only a new earliest of the tier
-- can: the due sets are looked at only then).
local function compact_put(keys, id, rec, due)
  local head = compact_head(keys)
  local wake = (not head or due < head) and (next_wake(keys) or math.huge)
  local b = compact_bucket(id)
  local rk, dk = compact_keys(keys, b)
  redis.call('HSET', rk, id, rec)
  redis.call('ZADD', dk, due, id)
  redis.call('ZADD', compact_index(keys), 'LT', due, b)
  c_exists = true
  if wake and due - compact_after < wake then
    redis.call('SPUBLISH', keys[7], fmt(due - compact_after))
  end
end
-- Moves the tasks of the compact tier due at or before `upto` (a string) into the due sets
-- of their priorities, at most about `max` (whole buckets' worth past it are left). Returns
-- true when some due by `upto` may be left.
local function compact_promote(keys, upto, max)
  if not compact_used(keys) then return false end
  local index, moved = compact_index(keys), 0
  while moved < max do
    local buckets = redis.call('ZRANGEBYSCORE', index, '-inf', upto, 'LIMIT', 0, 64)
    if #buckets == 0 then return false end
    for _, b in ipairs(buckets) do
      local rk, dk = compact_keys(keys, b)
      local due = redis.call('ZRANGEBYSCORE', dk, '-inf', upto, 'WITHSCORES', 'LIMIT', 0, max - moved)
      local ids, scores = {}, {}
      for i = 1, #due, 2 do
        ids[#ids + 1], scores[#scores + 1] = due[i], due[i + 1]
      end
      if #ids == 0 then  -- an index entry ahead of its bucket (written by hand): set it right
        compact_reindex(keys, b, dk)
        break
      end
      local recs = hmget_chunked(rk, ids)
      local records, by_key = {}, {}
      for i, id in ipairs(ids) do
        local rec = recs[i]
        if rec then
          records[#records + 1], records[#records + 2] = id, rec
          local k = due_key(keys, rec)
          by_key[k] = by_key[k] or {}
          local list = by_key[k]
          list[#list + 1], list[#list + 2] = scores[i], id
        end
      end
      if #records > 0 then call_chunked('HSET', keys[2], records) end
      for k, list in pairs(by_key) do call_chunked('ZADD', k, list) end
      call_chunked('ZREM', dk, ids)
      call_chunked('HDEL', rk, ids)
      compact_reindex(keys, b, dk)
      moved = moved + #ids
      if moved >= max then return true end
    end
  end
  return true
end
-- True when `id` waits in the shard of `keys` (due, parked or held).
local function waits(keys, id)
  for _, l in ipairs(due_levels(keys)) do
    if redis.call('ZSCORE', l[1], id) then return true end
  end
  return redis.call('ZSCORE', keys[8], id) ~= false or redis.call('ZSCORE', keys[12], id) ~= false
    or compact_get(keys, id) ~= nil
end
-- Takes `id` out of the sets of a waiting task (due, parked, held, dead); true when it was in
-- one. Call before its record changes (unhold reads the type from it).
local function unwait(keys, id)
  local held = unhold(keys, id)
  local due = unqueue(keys, id)
  local parked = redis.call('ZREM', keys[8], id) == 1
  local dead = redis.call('ZREM', keys[5], id) == 1
  return held or due or parked or dead
end
-- Puts waiting task `id` (in no set; the tasks hash's record, if any, is replaced unless
-- `unstored` says it has none) where it waits: the compact tier when this process stores there
-- and `due` is later than compact_after from now, else the due set of its priority (the
-- tasks hash holds its record); wakes dispatchers when it changes their next claim.
local function place(keys, id, rec, due, unstored)
  if compact_on and due > now_us() + compact_after then
    if not unstored then redis.call('HDEL', keys[2], id) end
    compact_put(keys, id, rec, due)
    return
  end
  redis.call('HSET', keys[2], id, rec)
  enqueue(keys, id, rec, due)
  wake_if_head(keys, id, due)
end
-- Takes `id` out of every place it may be: the due, parked, held and dead sets, its lease
-- (a run in flight is fenced off), the compact tier. The tasks hash keeps its record. Returns
-- its record (nil when it has none) and whether the tasks hash holds it. An id without a
-- record costs one lookup (two with a compact tier).
local function evict(keys, id)
  local rec = redis.call('HGET', keys[2], id)
  if rec then
    if not unwait(keys, id) then drop_lease(keys, id, rec) end
    return rec, true
  end
  return compact_del(keys, id), false
end
-- Stores task `id` with record `rec`, due at `due`, as a new schedule does: evicted from
-- wherever it was, then placed (place); emits `scheduled`.
local function store_task(keys, id, rec, due)
  emit('scheduled', id, rec, nil, nil, due)
  local _, stored = evict(keys, id)
  place(keys, id, rec, due, not stored)
end
)lua";

}  // namespace corvo::schedule::detail::lua
