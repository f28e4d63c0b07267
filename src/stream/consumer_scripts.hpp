#pragma once
// Lua scripts of the stream consumer (the admin calls' are in scripts.hpp). Every key is declared
// in KEYS (the stream and its dead-letter stream share a hash slot, dead_letter.hpp).

#include <corvo/redis/script.hpp>

namespace corvo::stream::detail {

// Dead-letters one pending entry: XACK it and, only if it was still pending in the group,
// append the dead letter (metadata of dead_letter.hpp in order, then the original fields).
// The XADD cannot fail after the XACK: the dead-letter key's type is checked first.
// KEYS: stream, dead-letter stream.
// ARGV: group, id, consumer, deliveries, reason, original field/value pairs…
// Returns 1 when dead-lettered, 0 when the entry was no longer pending (handled, dead-
// lettered or cleared by someone else): never two dead letters for one pending entry.
inline const redis::script& dead_letter_script() {
  static const redis::script s(R"lua(
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'stream' then
  return redis.error_reply('WRONGTYPE dead-letter key ' .. KEYS[2] .. ' holds a ' .. t)
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local now = redis.call('TIME')
local at_ms = tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local fields = {'dlq.stream', KEYS[1], 'dlq.id', ARGV[2], 'dlq.group', ARGV[1],
                'dlq.consumer', ARGV[3], 'dlq.deliveries', ARGV[4], 'dlq.reason', ARGV[5],
                'dlq.at_ms', at_ms}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
return 1
)lua");
  return s;
}

// Removes the consumers of a group, other than the caller, that have no pending entries
// and have been idle at least ARGV[2] ms. Checked and deleted in one script, so a consumer
// that took entries meanwhile is never deleted (DELCONSUMER would drop its pending entries).
// KEYS: stream. ARGV: group, min idle ms, own consumer name. Returns the removed names.
inline const redis::script& remove_idle_consumers_script() {
  static const redis::script s(R"lua(
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name ~= ARGV[3] and pending == 0 and idle >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
)lua");
  return s;
}

}  // namespace corvo::stream::detail
