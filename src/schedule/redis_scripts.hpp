#pragma once
// The Lua scripts of the Redis store. Every key a script touches is passed in KEYS or named
// from one of them with the same hash tag (a held set by type, the leased set), so each call
// touches one slot (Redis Cluster). Times come from the server's TIME, in microseconds; scores are
// µs since the epoch. Numbers returned to the client are formatted with %.0f (Lua 5.1's tostring
// would use 14 significant digits and lose microseconds).
//
// Common KEYS order: 1 due, 2 tasks, 3 inflight and 4 lease (leases taken by older versions:
// read and cleared, never written; see leased_key), 5 dead, 6 seq, 7 wake channel,
// 8 parked (due tasks of a paused type, set aside by a claim), 9 paused (set: '*' for the
// whole namespace, or task types), 10 due:high and 11 due:low (the due sets of the tasks of
// priority high and low; `due` holds the normal ones, so a namespace that uses no priority
// has the keys it had before them), 12 held (due tasks a claim held back for want of a
// permit of their type's limit, by due time; the same by type in `<held>:<type>`, by the
// claim's order), 13 events (the shard's event stream, written only when events are on).
// Task events (events.hpp, redis_store_options::events): the scripts that change a task take
// one more ARGV, 'MAX_LEN SOURCE' (events on: XADD to KEYS[13] with MAXLEN ~ MAX_LEN) or '0'
// (off: nothing written). Entry fields: k kind, i task id, y type, t time (µs, the server's),
// a attempt, d due (µs), r reason, w source (the writing process).
// Limits (limits.hpp, redis_store::set_limits): a limited type's keys are
// `{ns:limit:<type>}:running` (concurrency permits: token -> lease deadline), `:starts` (the
// rate log: token -> start time) and `:waiting` (the key prefixes `{ns:s}:` of the shards
// that hold tasks of the type back). On a standalone server claim, ack, nack and extend get
// them after the 13 shard keys, and the limited types in ARGV, only when limits are set: a
// namespace without limits runs the scripts as before. On a Redis Cluster (the keys are in
// another slot) the claim gets the limited types without their keys and holds back every due
// task of them; the store takes the permits in steps (redis_limit_scripts.hpp).
// Record layout: see include/corvo/schedule/detail/record.hpp.

#include "redis_script_prelude.hpp"

namespace corvo::schedule::detail::lua {

// KEYS 1..13; ARGV: id, due_us, record, if_absent ('1': keep an existing task with this id,
// whatever its state), events. Returns 1 when scheduled, 0 when an existing task was kept.
inline constexpr const char* schedule = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
if ARGV[4] == '1' and (redis.call('HEXISTS', KEYS[2], id) == 1 or compact_get(KEYS, id)) then
  return 0
end
events_on(ARGV[5])
store_task(KEYS, id, ARGV[3], due)
return 1
)lua";

// KEYS 1..13; ARGV: id, record, dead_max_count, dead_max_age_us (no event). Writes a dead task back
// as exported (redis_store::restore): the record as given, in the dead-letter set at the server's
// now (the dead-letter caps apply), out of every other set (every priority's).
inline constexpr const char* restore_dead = R"lua(
local id = ARGV[1]
evict(KEYS, id)
redis.call('HSET', KEYS[2], id, ARGV[2])
dead_letter(KEYS, id, now_us(), tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
)lua";

// KEYS 1..13, 14 the id's deduplication window (a key that expires with the window); ARGV: id,
// due_us, record, window_ms, mode ('replace' | 'drop'), events. Returns 'scheduled' (as schedule;
// a new window opens), 'replaced' (window open, the waiting task took the new record and
// due time) or 'dropped' (window open, mode drop). See store::schedule_deduplicated.
inline constexpr const char* schedule_dedup = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
events_on(ARGV[6])
if redis.call('EXISTS', KEYS[14]) == 1 then
  if ARGV[5] == 'drop' then return 'dropped' end
  if unqueue(KEYS, id) or redis.call('ZREM', KEYS[8], id) == 1 or unhold(KEYS, id)
      or compact_del(KEYS, id) then
    place(KEYS, id, ARGV[3], due)
    emit('scheduled', id, ARGV[3], nil, 'replaced', due)
    return 'replaced'
  end
end
redis.call('SET', KEYS[14], '1', 'PX', ARGV[4])
store_task(KEYS, id, ARGV[3], due)
return 'scheduled'
)lua";

// KEYS 1..13; ARGV: limit, lease_ms, dead_max_count, dead_max_age_us, nonce (random, new
// for every call: a token is the shard's counter and the nonce, so a counter rolled back by a
// failover or a restart from an older snapshot never hands out a token again), aging_us (the
// priority boost per level: due tasks are taken in the order of due - level * aging, ties to
// the higher level; see task.hpp `priority`), ahead_us (also take tasks due up to now +
// ahead_us: redis_store_options::claim_ahead; the dispatcher starts them at their due time).
// ARGV[8]: the number L of limited types, then per type: type, starts per window (0: no
// rate), window_us, concurrency (0: none), then events, then '1' to write each lease into its
// record (redis_store_options::compatible_leases; anything else: keep it in its token, see
// the prelude's leases); KEYS 14.. per type: running, starts, waiting. Limited types without
// their KEYS (a Redis Cluster): no permit is taken here, every due task of a limited type is
// held, and permit_at reports the held count of each type instead ('N1 N2 ...', in ARGV
// order; 0 for every type while the namespace is paused).
// Returns {now, next_due|'', next_lease|'', permit_at|'', events written (ev_tally), lease
// prefix|'', id1, token1, due1, record1, ...}: a token '' is the lease prefix joined with the
// due time (a lease kept in its token, of a type without a limit); each record as the claim
// wrote it (a lease written into the record) or as it was (a lease kept in its token: the try
// is its attempts + 1, and its occurrence is the due time when it has none;
// detail::apply_lease).
// A due task of a limited type with no permit free moves to the held sets (attempts and
// record untouched); at the start of a claim, as many held tasks of each type as it has
// permits free go back to their due set (by the claim's order); permit_at: the earliest
// time a type with tasks still held here may have a permit.
// An expired lease makes its task due now, or dead when that try was its last
// ("lease expired N times (worker died or hung)"). A record whose header does not parse is
// dead-lettered (rewritten with the reason, the original kept as its payload). With the
// namespace paused nothing is claimed and no next due time is reported (resume wakes the
// dispatchers); a due task of a paused type moves to the parked set, still due.
inline constexpr const char* claim = R"lua(
local now = now_us()
local dead_max_count, dead_max_age = tonumber(ARGV[3]), tonumber(ARGV[4])
events_on(ARGV[9 + 4 * (tonumber(ARGV[8]) or 0)], now)
-- Leases written into the records (compatible leases: '1'), or kept in their tokens.
local written = ARGV[10 + 4 * (tonumber(ARGV[8]) or 0)] == '1'
local leased = leased_key(KEYS)
-- The task of an expired lease `token` (its record `rec`, false when gone) becomes due now,
-- or dead when that try was its last.
local function expire(id, rec, token)
  local attempts, max
  if rec then
    rec = lease_record(rec, token)
    attempts, max = header(rec)
  end
  if attempts then
    local reason = expiry_error(rec)
    redis.call('HSET', KEYS[2], id, with_error(rec, reason))
    if attempts >= max then
      emit('dead', id, rec, attempts, reason)
      dead_letter(KEYS, id, now, dead_max_count, dead_max_age)
    else
      enqueue(KEYS, id, rec, now)
      emit('failed', id, rec, attempts, reason)
    end
  elseif rec then
    redis.call('ZADD', KEYS[1], now, id)
  end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', fmt(now), 'LIMIT', 0, 1000)) do
  redis.call('ZREM', leased, member)
  local id, token = string.match(member, '^(.*) (%S+)$')
  local rec = id and redis.call('HGET', KEYS[2], id)
  -- A lease kept in its token is current while its member is there (every end of a lease
  -- removes it); one naming a waiting or dead task is not (written by hand: dropped).
  if rec and (token_of(rec) == token or (token_due(token) and not waits(KEYS, id)
      and not redis.call('ZSCORE', KEYS[5], id))) then
    expire(id, rec, token)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', fmt(now), 'LIMIT', 0, 1000)) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  expire(id, redis.call('HGET', KEYS[2], id), '')
end
local out = {fmt(now), '', '', '', '', ''}
local nout = #out
local lease_prefix  -- leases kept in their tokens: '<counter>.<nonce>.' (out[6])
-- Times go to the server as strings formatted once here (redis.call would format a Lua
-- number exactly, with %.17g, but for every call and task it is passed to).
local horizon = fmt(now + (tonumber(ARGV[7]) or 0))
-- The compact tier's tasks due within compact_after (or by the horizon) join the due sets
-- first. When more are due than one claim moves, it takes nothing due after those left (the
-- next claim, at once, goes on).
local promote_by = math.max(now + compact_after, tonumber(horizon))
if compact_promote(KEYS, fmt(promote_by), 1000) then
  local left = compact_head(KEYS)
  if left and left < tonumber(horizon) then horizon = fmt(left) end
end
local limit = tonumber(ARGV[1])
local prefix = shard_prefix(KEYS)
local limits, nlim = {}, tonumber(ARGV[8]) or 0
local split = nlim > 0 and #KEYS == 13  -- the permits are in other slots (a cluster)
for i = 1, nlim do
  local a, k = 8 + (i - 1) * 4, 13 + (i - 1) * 3
  limits[ARGV[a + 1]] = {held = held_key(KEYS, ARGV[a + 1]), n = tonumber(ARGV[a + 2]),
    per = tonumber(ARGV[a + 3]), m = tonumber(ARGV[a + 4]), running = KEYS[k + 1],
    starts = KEYS[k + 2], waiting = KEYS[k + 3]}
end
-- Permits of `l` free now and, when none is, the earliest time one may be (none here on a
-- cluster: the store takes them in the type's slot).
local function permits(l)
  if split then return 0, nil end
  return free_permits(l.running, l.starts, l.n, l.per, l.m, now)
end
for _, l in pairs(limits) do
  if redis.call('EXISTS', l.held) == 1 then
    local free = permits(l)
    if free > 0 then
      for _, id in ipairs(redis.call('ZRANGE', l.held, 0, math.min(free, 1000) - 1)) do
        redis.call('ZREM', l.held, id)
        local due = redis.call('ZSCORE', KEYS[12], id)
        redis.call('ZREM', KEYS[12], id)
        local rec = redis.call('HGET', KEYS[2], id)
        if rec and due then enqueue(KEYS, id, rec, due) end
      end
    end
  end
end
local all_paused, paused_types = false, nil
for _, p in ipairs(redis.call('SMEMBERS', KEYS[9])) do
  if p == '*' then all_paused = true else
    paused_types = paused_types or {}
    paused_types[p] = true
  end
end
local looks_at_type = nlim > 0 or paused_types ~= nil  -- a claimed record's type matters
local claimed, examined = 0, 0
local aging = tonumber(ARGV[6]) or 0
local levels = due_levels(KEYS)
-- At most 1000 tasks held back per call beyond the limit (a backlog of a limited type moves
-- over several claims; the head stays due, so the dispatcher claims again at once).
-- The lease deadline, formatted once (not for every task it is written with).
local deadline = fmt(now + tonumber(ARGV[2]) * 1000)
while limit > 0 and claimed < limit and not all_paused and examined < limit + 1000 do
  local want = limit - claimed
  -- Up to `want` due entries of each level, merged by due - level * aging.
  local found, at, total, more, nonempty, single = {}, {}, 0, false, 0, nil
  for l = 1, #levels do
    found[l] = redis.call('ZRANGEBYSCORE', levels[l][1], '-inf', horizon, 'WITHSCORES', 'LIMIT', 0, want)
    at[l] = 1
    total = total + #found[l] / 2
    if #found[l] == 2 * want then more = true end  -- this level may hold more due entries
    if #found[l] > 0 then nonempty, single = nonempty + 1, l end
  end
  -- The picks in claim order (id, score, level: parallel arrays); then each kind of write is
  -- one call for all of them. Entries of one level alone need no merge.
  local pid, pscore, plevel = {}, {}, nil  -- plevel: nil when every pick is of `single`
  if nonempty == 1 then
    local f = found[single]
    for i = 1, #f / 2 do
      pid[i], pscore[i] = f[2 * i - 1], f[2 * i]
    end
  else
    plevel = {}
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
      pid[#pid + 1] = found[best][at[best]]
      pscore[#pscore + 1] = found[best][at[best] + 1]
      plevel[#plevel + 1] = best
      at[best] = at[best] + 2
    end
  end
  if #pid == 0 then break end
  examined = examined + #pid
  if nonempty == 1 then
    -- One level: the picks are its first entries (ZRANGEBYSCORE from -inf), removed by rank
    -- without looking each one up.
    redis.call('ZREMRANGEBYRANK', levels[single][1], 0, #pid - 1)
  else
    local by_level = {}
    for i, id in ipairs(pid) do
      by_level[plevel[i]] = by_level[plevel[i]] or {}
      table.insert(by_level[plevel[i]], id)
    end
    for l, level_ids in pairs(by_level) do call_chunked('ZREM', levels[l][1], level_ids) end
  end
  local recs = hmget_chunked(KEYS[2], pid)
  -- Leases kept in their tokens (not `written`) of types without a limit: the call's one
  -- counter value, the nonce and the task's due time make the token; the reply gives it as ''
  -- and the client joins out[6] and the due time (one string less per task). Leases written
  -- into the records, of types without a limit: their tokens come from one INCRBY after the
  -- loop. A limited type's claim takes its permits with its token, so it takes its token at
  -- once.
  if not written and not lease_prefix and #pid > 0 then
    lease_prefix = redis.call('INCR', KEYS[6]) .. '.' .. ARGV[5] .. '.'
    out[6] = lease_prefix
  end
  local b_id, b_rec, b_pos, b_attempts, b_end, b_body = {}, {}, {}, {}, {}, {}
  local members, nm = {}, 0
  for i = 1, #pid do
    local id, score = pid[i], pscore[i]
    local rec = recs[i]
    local t = rec and looks_at_type and type_of(rec)
    local l = t and limits[t]
    if t and paused_types and paused_types[t] then
      redis.call('ZADD', KEYS[8], score, id)
    elseif rec and not well_formed(rec) then
      redis.call('HSET', KEYS[2], id, '0\n1\n\n\nmalformed task record (its header does not ' ..
        'parse); the original record is the payload\n' .. cjson.encode(rec))
      emit('dead', id, nil, 0, 'malformed task record (its header does not parse)')
      dead_letter(KEYS, id, now, dead_max_count, dead_max_age)
    elseif l and (l.blocked or permits(l) == 0) then
      l.blocked = true  -- no permit left in this call
      redis.call('ZADD', KEYS[12], score, id)
      local level = levels[plevel and plevel[i] or single][2]
      redis.call('ZADD', l.held, tonumber(score) - level * aging, id)
      if not split then redis.call('SADD', l.waiting, prefix) end
    elseif rec then
      local token = ''
      if l then
        token = redis.call('INCR', KEYS[6]) .. '.' .. ARGV[5]
        if not written then token = token .. '.' .. score end
        if l.m > 0 then redis.call('ZADD', l.running, deadline, token) end
        if l.n > 0 then redis.call('ZADD', l.starts, now, token) end
        local attempts, _, options_end, body = header(rec)
        if written then
          rec = claimed_record(rec, attempts + 1, token, options_end, body, score)
          redis.call('HSET', KEYS[2], id, rec)
        end
        redis.call('ZADD', leased, deadline, id .. ' ' .. token)
        emit('started', id, rec, attempts + 1)
      elseif written then
        local n = #b_id + 1
        local attempts, _, options_end, body = header(rec)
        b_id[n], b_rec[n], b_pos[n], b_attempts[n] = id, rec, nout + 2, attempts + 1
        b_end[n], b_body[n] = options_end, body
      else
        members[nm + 1], members[nm + 2] = deadline, id .. ' ' .. lease_prefix .. score
        nm = nm + 2
        if ev_max then emit('started', id, rec, attempts_of(rec) + 1) end
      end
      out[nout + 1], out[nout + 2], out[nout + 3], out[nout + 4] = id, token, score, rec
      nout = nout + 4
      claimed = claimed + 1
    end
  end
  if #b_id > 0 then
    local first = redis.call('INCRBY', KEYS[6], #b_id) - #b_id
    local records = {}
    for j = 1, #b_id do
      local id = b_id[j]
      local token = string.format('%d', first + j) .. '.' .. ARGV[5]
      local rec = claimed_record(b_rec[j], b_attempts[j], token, b_end[j], b_body[j],
        out[b_pos[j] + 1])
      out[b_pos[j]], out[b_pos[j] + 2] = token, rec
      records[2 * j - 1], records[2 * j] = id, rec
      members[nm + 1], members[nm + 2] = deadline, id .. ' ' .. token
      nm = nm + 2
      emit('started', id, rec, b_attempts[j])
    end
    call_chunked('HSET', KEYS[2], records)
  end
  if nm > 0 then call_chunked('ZADD', leased, members) end
  if not more and total <= want then break end  -- every due entry was taken: none left
end
local head = next_wake(KEYS)
if head and not all_paused then out[2] = fmt(head) end
out[3] = next_lease(KEYS) or ''
local permit_at
if split then
  local counts = {}
  for i = 1, nlim do
    counts[i] = all_paused and 0 or redis.call('ZCARD', held_key(KEYS, ARGV[9 + (i - 1) * 4]))
  end
  out[4] = table.concat(counts, ' ')
end
for _, l in pairs(split and {} or limits) do
  if redis.call('EXISTS', l.held) == 1 then
    local free, at = permits(l)
    if free > 0 then at = now end  -- moved back but not taken (the limit): claim again
    if at and (not permit_at or at < permit_at) then permit_at = at end
  else
    redis.call('SREM', l.waiting, prefix)
  end
end
if permit_at and not all_paused then out[4] = fmt(permit_at) end
out[5] = ev_tally()
return out
)lua";

// KEYS 1..13, then per limited type: running, waiting; ARGV: L (limited types), their L
// names, events, then (id, token, next_due_us|'')... Returns {the number acked, the events
// written (ev_tally)}. A next due time
// starts the next occurrence: the record's occurrence becomes it. Every token's permit is
// released, stale or not: its run has ended.
inline constexpr const char* ack = R"lua(
local acked = 0
local nlim = tonumber(ARGV[1])
events_on(ARGV[2 + nlim])
local leased = leased_key(KEYS)
local old_leases
-- A token is current when removing its member from the leased set removes one (a ZREM per
-- member: cheaper than a ZMSCORE for the batch, whose reply formats every score; a token
-- twice in the batch is current once), or, for a lease taken by an older version, when the
-- `lease` hash holds it. Finished one-off tasks leave with their records in one call.
local finished, nf = {}, 0
for i = 3 + nlim, #ARGV, 3 do
  local id, token, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  for l = 1, nlim do release(KEYS[12 + 2 * l], KEYS[13 + 2 * l], ARGV[1 + l], token) end
  local current = redis.call('ZREM', leased, id .. ' ' .. token) == 1
  if not current then
    if old_leases == nil then old_leases = redis.call('EXISTS', KEYS[4]) == 1 end
    if old_leases and redis.call('HGET', KEYS[4], id) == token then
      current = true
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
    end
  end
  if current then
    if nxt ~= '' then
      local rec = redis.call('HGET', KEYS[2], id)
      if rec then
        emit('succeeded', id, rec, lease_attempts(rec, token))
        redis.call('HSET', KEYS[2], id, with_occurrence(with_error(with_lease(rec, 0, nil), ''), nxt))
        if redis.call('ZADD', due_key(KEYS, rec), 'NX', nxt, id) == 1 then
          wake_if_head(KEYS, id, tonumber(nxt))
        end
        emit('scheduled', id, rec, nil, 'next occurrence', tonumber(nxt))
      end
    else
      if ev_max then
        local rec = redis.call('HGET', KEYS[2], id)
        emit('succeeded', id, rec, lease_attempts(rec, token))
      end
      nf = nf + 1
      finished[nf] = id
    end
    acked = acked + 1
  end
end
if nf > 0 then call_chunked('HDEL', KEYS[2], finished) end
return {tostring(acked), ev_tally()}
)lua";

// KEYS 1..13, then per limited type: running, waiting; ARGV: id, token, error, retry_us|''
// (empty: dead-letter), dead_max_count, dead_max_age_us, L, the L limited types, events.
// Returns {'1', the events written (ev_tally)}, or {'0', ''} for a stale token. The token's
// permit is released, stale or not.
inline constexpr const char* nack = R"lua(
local id, token = ARGV[1], ARGV[2]
local nlim = tonumber(ARGV[7]) or 0
for l = 1, nlim do release(KEYS[12 + 2 * l], KEYS[13 + 2 * l], ARGV[7 + l], token) end
if redis.call('ZREM', leased_key(KEYS), id .. ' ' .. token) == 0 then
  if redis.call('HGET', KEYS[4], id) ~= token then return {'0', ''} end
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
local now = now_us()
events_on(ARGV[8 + nlim], now)
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return {'1', ev_tally()} end
rec = lease_record(rec, token)
redis.call('HSET', KEYS[2], id, with_error(rec, ARGV[3]))
if ARGV[4] ~= '' then
  local due = now + tonumber(ARGV[4])
  enqueue(KEYS, id, rec, due)
  wake_if_head(KEYS, id, due)
  emit('failed', id, rec, attempts_of(rec), ARGV[3])
  return {'1', ev_tally()}
end
emit('dead', id, rec, attempts_of(rec), ARGV[3])
dead_letter(KEYS, id, now, tonumber(ARGV[5]), tonumber(ARGV[6]))
return {'1', ev_tally()}
)lua";

// KEYS 1..13, then per limited type: running, waiting; ARGV: lease_ms, L (limited types),
// then (id, token)... Returns '1' (renewed) or '0' (not held) per lease. A renewed lease's
// concurrency permit gets the same deadline.
inline constexpr const char* extend = R"lua(
local deadline = now_us() + tonumber(ARGV[1]) * 1000
local nlim = tonumber(ARGV[2])
local held = {}
local leased = leased_key(KEYS)
for i = 3, #ARGV, 2 do
  local member = ARGV[i] .. ' ' .. ARGV[i + 1]
  local set, entry
  if redis.call('ZSCORE', leased, member) then
    set, entry = leased, member
  elseif redis.call('HGET', KEYS[4], ARGV[i]) == ARGV[i + 1] then
    set, entry = KEYS[3], ARGV[i]  -- a lease taken by an older version
  end
  if set then
    redis.call('ZADD', set, 'XX', deadline, entry)
    for l = 1, nlim do redis.call('ZADD', KEYS[12 + 2 * l], 'XX', deadline, ARGV[i + 1]) end
    held[#held + 1] = '1'
  else
    held[#held + 1] = '0'
  end
end
return held
)lua";

// KEYS 1..13; ARGV: id, events. Returns 1 when the task existed.
inline constexpr const char* cancel = R"lua(
local id = ARGV[1]
events_on(ARGV[2])
local rec, stored = evict(KEYS, id)
if not rec then
  unwait(KEYS, id)  -- entries of a task without a record (written by hand): dropped
  return 0
end
emit('cancelled', id, rec)
if stored then redis.call('HDEL', KEYS[2], id) end
return 1
)lua";

// KEYS 1..13; ARGV: id. Returns the token of the id's lease found in the leased set (a scan:
// redis_store::get of a task that is not waiting), '' when it has none.
inline constexpr const char* lease_of = R"lua(
local member = lease_member_of(KEYS, ARGV[1])
if not member then return '' end
return string.match(member, ' (%S+)$')
)lua";

// KEYS 1..13; ARGV: id, due_us, events. Returns 1 when a waiting task was moved (its
// occurrence moves with it).
inline constexpr const char* reschedule = R"lua(
local id, due = ARGV[1], tonumber(ARGV[2])
local rec
if unqueue(KEYS, id) or redis.call('ZREM', KEYS[8], id) == 1 or unhold(KEYS, id) then
  rec = redis.call('HGET', KEYS[2], id)
else
  rec = compact_del(KEYS, id)
  if not rec then return 0 end
end
if rec then
  place(KEYS, id, with_occurrence(rec, ARGV[2]), due)
else
  enqueue(KEYS, id, nil, due)  -- a due entry without its record: moved as it is
  wake_if_head(KEYS, id, due)
end
events_on(ARGV[3])
emit('scheduled', id, rec, nil, 'rescheduled', due)
return 1
)lua";

// KEYS 1..13; ARGV: what ('*': the namespace, or a task type). Pauses it on this shard.
inline constexpr const char* pause = R"lua(
redis.call('SADD', KEYS[9], ARGV[1])
return 1
)lua";

// KEYS 1..13; ARGV: what ('*' or a task type). Lifts the pause on this shard, moves the
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
local head = next_wake(KEYS)
if head then redis.call('SPUBLISH', KEYS[7], fmt(head)) end
return moved
)lua";

// KEYS 1..13; ARGV: id, events. Returns 1 when a dead task went back to due (attempts
// reset).
inline constexpr const char* replay = R"lua(
local id = ARGV[1]
if redis.call('ZREM', KEYS[5], id) == 0 then return 0 end
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return 0 end
local now = now_us()
redis.call('HSET', KEYS[2], id, with_attempts(rec, 0))
enqueue(KEYS, id, rec, now)
wake_if_head(KEYS, id, now)
events_on(ARGV[2], now)
emit('scheduled', id, rec, nil, 'replayed', now)
return 1
)lua";

// KEYS 1..13; ARGV: id|'' (empty: every dead task). Returns the number deleted.
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

// KEYS 1..13; ARGV: id. Returns {record, due_us} of a task waiting in the compact tier, {}
// when it is not there (redis_store::get).
inline constexpr const char* compact_peek = R"lua(
local rec, due = compact_get(KEYS, ARGV[1])
if not rec then return {} end
return {rec, due}
)lua";

// KEYS 1..13; ARGV: after_due_us|'' (from the start), after_id, count. Returns up to `count`
// tasks of the compact tier after (after_due, after_id) in (due, id) order, as {id, due_us,
// record, ...} (redis_store::browse). Buckets are read in the order of their earliest due
// time until one's earliest is past the page's last entry so far, each up to that entry.
inline constexpr const char* compact_page = R"lua(
if not compact_used(KEYS) then return {} end
local count = tonumber(ARGV[3])
local after_due = ARGV[1] ~= '' and tonumber(ARGV[1]) or nil
local after_id = ARGV[2]
local low = after_due and ARGV[1] or '-inf'
local picks = {}  -- {due (number), id, bucket's record key}
local function before(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end
-- Once `count` picks are known, the due time of the last: no bucket needs reading past it.
local last, high = nil, '+inf'
local function trim()
  table.sort(picks, before)
  for j = #picks, count + 1, -1 do picks[j] = nil end
  if #picks >= count then last = picks[count][1]; high = fmt(last) end
end
local index = redis.call('ZRANGE', compact_index(KEYS), 0, -1, 'WITHSCORES')
for i = 1, #index, 2 do
  if last and tonumber(index[i + 1]) > last then break end
  local rk, dk = compact_keys(KEYS, index[i])
  local offset = 0
  while true do
    local got = redis.call('ZRANGEBYSCORE', dk, low, high, 'WITHSCORES', 'LIMIT', offset, count)
    for j = 1, #got, 2 do
      local due = tonumber(got[j + 1])
      if not after_due or due > after_due or got[j] > after_id then
        picks[#picks + 1] = {due, got[j], rk}
      end
    end
    if #got < 2 * count then break end
    offset = offset + count
  end
  if #picks >= 2 * count then trim() end
end
trim()
local out = {}
for _, p in ipairs(picks) do
  out[#out + 1] = p[2]
  out[#out + 1] = fmt(p[1])
  out[#out + 1] = redis.call('HGET', p[3], p[2]) or ''
end
return out
)lua";

// KEYS 1..13; ARGV: max. Moves up to `max` waiting tasks of the due sets (every priority's)
// due later than compact_after from now into the compact tier (redis_store::compact_waiting);
// a due entry without its record is dropped, as a claim would. Returns {moved, examined}:
// examined < max when none is left.
inline constexpr const char* compact_move = R"lua(
local max = tonumber(ARGV[1])
local after = '(' .. fmt(now_us() + compact_after)
local moved, examined = 0, 0
for _, l in ipairs(due_levels(KEYS)) do
  if examined >= max then break end
  local found = redis.call('ZRANGEBYSCORE', l[1], after, '+inf', 'WITHSCORES', 'LIMIT', 0,
    max - examined)
  for i = 1, #found, 2 do
    local id = found[i]
    local rec = redis.call('HGET', KEYS[2], id)
    redis.call('ZREM', l[1], id)
    if rec then
      redis.call('HDEL', KEYS[2], id)
      compact_put(KEYS, id, rec, tonumber(found[i + 1]))
      moved = moved + 1
    end
    examined = examined + 1
  end
end
return {moved, examined}
)lua";

// KEYS 1..13; ARGV: now_us. Returns {tasks waiting in the compact tier, those due by now}
// (redis_store::stats): O(buckets).
inline constexpr const char* compact_stats = R"lua(
if not compact_used(KEYS) then return {0, 0} end
local total, due = 0, 0
local index = redis.call('ZRANGE', compact_index(KEYS), 0, -1, 'WITHSCORES')
for i = 1, #index, 2 do
  local _, dk = compact_keys(KEYS, index[i])
  total = total + redis.call('ZCARD', dk)
  if tonumber(index[i + 1]) <= tonumber(ARGV[1]) then
    due = due + redis.call('ZCOUNT', dk, '-inf', ARGV[1])
  end
end
return {total, due}
)lua";

}  // namespace corvo::schedule::detail::lua
