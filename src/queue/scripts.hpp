#pragma once
// The Lua scripts of the list queues (keys: include/corvo/queue/item.hpp). Every key a
// script touches is in KEYS, and all keys of one queue share its hash tag, so each call
// touches one slot (Redis Cluster). Times come from the server's TIME, in ms.
//
// Dead-letter entry: one line of JSON metadata {"reason", "attempts", "consumer", "at_ms"},
// a newline, then the item's envelope (with the attempts it had when it died).

#include <corvo/redis/script.hpp>
#include <string>

namespace corvo::queue::detail {

inline const std::string prelude = R"lua(
local function parse(item)
  local id, n = string.match(item, '^c1|([^|]*)|(%d+)|')
  if not id then return '', 0, item end
  return id, tonumber(n), string.sub(item, 6 + #id + #n)
end
local function wrap(id, n, body)
  return 'c1|' .. id .. '|' .. string.format('%d', n) .. '|' .. body
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bury(dead, max, reason, attempts, consumer, envelope)
  local meta = '{"reason":' .. cjson.encode(reason) .. ',"attempts":' ..
               string.format('%d', attempts) .. ',"consumer":' .. cjson.encode(consumer) ..
               ',"at_ms":' .. string.format('%.0f', now_ms()) .. '}'
  redis.call('LPUSH', dead, meta .. '\n' .. envelope)
  redis.call('LTRIM', dead, 0, max - 1)
end
)lua";

// Moves up to ARGV[1] items from the queue's tail to the head of the processing list (the
// oldest of them ends up nearest the tail); returns them oldest first.
// KEYS: queue, processing.
inline const redis::script take(prelude + R"lua(
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not items then return {} end
redis.call('LPUSH', KEYS[2], unpack(items))
return items
)lua");

// Settles a failed delivery. KEYS: processing, queue, dead, delayed.
// ARGV: item, reason, max_attempts, consumer, dead_letter_max, permanent (1/0),
// delay ms (0: none).
// Returns -1 when the item is no longer in the processing list (the reaper took it), 1 when
// it went back to the queue (at the back of the line: LPUSH) with attempts + 1, 2 when it
// was dead-lettered, 3 when it went to the delayed set with attempts + 1, due now + delay.
// Leaving the processing list and entering the queue, the dead letters or the delayed set
// is one step: a crash at any point loses nothing.
inline const redis::script fail(prelude + R"lua(
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return -1 end
local id, n, body = parse(ARGV[1])
n = n + 1
if ARGV[6] == '1' or n >= tonumber(ARGV[3]) then
  bury(KEYS[3], tonumber(ARGV[5]), ARGV[2], n, ARGV[4], wrap(id, n, body))
  return 2
end
local delay = tonumber(ARGV[7])
if delay > 0 then
  redis.call('ZADD', KEYS[4], now_ms() + delay, wrap(id, n, body))
  return 3
end
redis.call('LPUSH', KEYS[2], wrap(id, n, body))
return 1
)lua");

// Moves up to ARGV[1] due items of the delayed set to the back of the queue (LPUSH), the
// earliest due first (so it is consumed first). KEYS: delayed, queue.
// Returns {moved, ms until the next item is due (-1: none left)}.
inline const redis::script promote_due(prelude + R"lua(
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('LPUSH', KEYS[2], due[i])
end
local wait = -1
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next > 0 then
  wait = math.max(0, tonumber(next[2]) - now)
end
return {#due, wait}
)lua");

// Dead-letters an item a work_queue popped (it is in no list any more).
// KEYS: dead. ARGV: item, reason, consumer, dead_letter_max.
inline const redis::script bury_popped(prelude + R"lua(
local id, n, body = parse(ARGV[1])
bury(KEYS[1], tonumber(ARGV[4]), ARGV[2], n + 1, ARGV[3], wrap(id, n + 1, body))
return 1
)lua");

// Hands items back uncounted (a clean stop): each ARGV item still in the processing list
// goes to the queue's tail (consumed next). Returns how many. KEYS: processing, queue.
inline const redis::script hand_back(R"lua(
local n = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
)lua");

// Renews a consumer's heartbeat. KEYS: heartbeat, consumers. ARGV: consumer, ttl ms.
// Returns the server time in ms.
inline const redis::script heartbeat(prelude + R"lua(
local now = now_ms()
redis.call('SET', KEYS[1], string.format('%.0f', now), 'PX', tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return string.format('%.0f', now)
)lua");

// Recovers the items of a consumer whose heartbeat has expired (or of this consumer at its
// own start, ARGV[5] = 1): each goes back to the queue's tail with attempts + 1, oldest
// consumed first, or to the dead letters once it has had max_attempts deliveries. Forgets
// the consumer when it last beat more than forget_after ago.
// KEYS: heartbeat, processing, queue, dead, consumers.
// ARGV: consumer, max_attempts, dead_letter_max, forget_after ms, force (1/0).
// Returns {requeued, dead-lettered, forgotten (1/0)}; {-1, 0, 0} when the consumer is alive.
inline const redis::script reap(prelude + R"lua(
if ARGV[5] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0, 0} end
local max = tonumber(ARGV[2])
local items = redis.call('LRANGE', KEYS[2], 0, -1)
local requeued, buried = 0, 0
for i = 1, #items do
  local id, n, body = parse(items[i])
  n = n + 1
  if n >= max then
    bury(KEYS[4], tonumber(ARGV[3]), 'consumer ' .. ARGV[1] ..
         ' stopped (heartbeat expired) during attempt ' .. n, n, ARGV[1], wrap(id, n, body))
    buried = buried + 1
  else
    redis.call('RPUSH', KEYS[3], wrap(id, n, body))
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[2])
local forgotten = 0
if ARGV[5] ~= '1' then
  local seen = redis.call('ZSCORE', KEYS[5], ARGV[1])
  if not seen or now_ms() - tonumber(seen) >= tonumber(ARGV[4]) then
    redis.call('ZREM', KEYS[5], ARGV[1])
    forgotten = 1
  end
end
return {requeued, buried, forgotten}
)lua");

// A clean stop: the heartbeat goes (the reaper may take what is left at once), and the
// consumer is forgotten when its processing list is empty. KEYS: heartbeat, processing,
// consumers. ARGV: consumer. Returns the items left in the processing list.
inline const redis::script leave(R"lua(
redis.call('DEL', KEYS[1])
local left = redis.call('LLEN', KEYS[2])
if left == 0 then redis.call('ZREM', KEYS[3], ARGV[1]) end
return left
)lua");

// Dead letters back to the queue with their attempts reset: every one (ARGV[1] = '') or
// those whose item id is ARGV[1]; oldest first. KEYS: dead, queue. Returns how many.
inline const redis::script replay(prelude + R"lua(
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local n = 0
for i = #entries, 1, -1 do
  local e = entries[i]
  local nl = string.find(e, '\n', 1, true)
  if nl then
    local id, _, body = parse(string.sub(e, nl + 1))
    if ARGV[1] == '' or id == ARGV[1] then
      redis.call('LREM', KEYS[1], -1, e)
      redis.call('LPUSH', KEYS[2], wrap(id, 0, body))
      n = n + 1
    end
  end
end
return n
)lua");

// Deletes dead letters: every one (ARGV[1] = '') or those whose item id is ARGV[1].
// KEYS: dead. Returns how many.
inline const redis::script purge(prelude + R"lua(
if ARGV[1] == '' then
  local n = redis.call('LLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
  return n
end
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local n = 0
for i = 1, #entries do
  local e = entries[i]
  local nl = string.find(e, '\n', 1, true)
  if nl then
    local id = parse(string.sub(e, nl + 1))
    if id == ARGV[1] then
      n = n + redis.call('LREM', KEYS[1], 1, e)
    end
  end
end
return n
)lua");

}  // namespace corvo::queue::detail
