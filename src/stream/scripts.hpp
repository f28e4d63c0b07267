#pragma once
// The Lua scripts of the stream admin calls. Each declares every key it touches in KEYS
// (one hash slot on a cluster). Ids are compared as decimal strings (ms and seq are 64-bit,
// beyond Lua's exact doubles).

namespace corvo::stream::detail::lua {

// Shared helpers, prepended to the scripts that need them: id comparison and successor,
// as text.
inline constexpr const char* ids = R"lua(
local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms, seq
end
local function cmp_num(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function cmp(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  local c = cmp_num(am, bm)
  if c ~= 0 then return c end
  return cmp_num(as, bs)
end
local function incr(num)
  local digits = {}
  for i = 1, #num do digits[i] = string.byte(num, i) - 48 end
  local i = #digits
  while i >= 1 do
    if digits[i] < 9 then digits[i] = digits[i] + 1 break end
    digits[i] = 0
    i = i - 1
  end
  local out = (i == 0) and '1' or ''
  for j = 1, #digits do out = out .. digits[j] end
  return out
end
local function succ(id)
  local ms, seq = split(id)
  if seq == '18446744073709551615' then return incr(ms) .. '-0' end
  return ms .. '-' .. incr(seq)
end
)lua";

// (Run with `ids` prepended.)
// KEYS[1] stream. ARGV[1] "age" or "id"; ARGV[2] max age in ms, or the min id;
// ARGV[3] "1" to trim entries a group has not read yet.
// Returns {-1} for a missing key, {-2, type} for another type, else
// {trimmed, requested, bound, limit ("" | "pending" | "undelivered"), group, length}.
inline constexpr const char* safe_trim = R"lua(
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {-1} end
if kind ~= 'stream' then return {-2, kind} end
local requested
if ARGV[1] == 'age' then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local bound_ms = now_ms - tonumber(ARGV[2])
  if bound_ms < 0 then bound_ms = 0 end
  requested = string.format('%.0f', bound_ms) .. '-0'
else
  requested = ARGV[2]
end
local bound, limit, limiting = requested, '', ''
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if tonumber(info['pending']) > 0 then
    local lowest = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if cmp(lowest, bound) < 0 then bound, limit, limiting = lowest, 'pending', info['name'] end
  end
  if ARGV[3] ~= '1' then
    local first_unread = succ(info['last-delivered-id'])
    if cmp(first_unread, bound) < 0 then
      bound, limit, limiting = first_unread, 'undelivered', info['name']
    end
  end
end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', bound)
return {trimmed, requested, bound, limit, limiting, redis.call('XLEN', KEYS[1])}
)lua";

// KEYS[1] dead-letter stream, KEYS[2] the source stream the caller read from the entry.
// ARGV[1] the dead letter's id; ARGV[2..] the metadata field names, in order.
// Returns {0} not found, {-1, problem} malformed (left in place), {-2, stream} the entry
// names another source stream, {-3, type} the source key is not a stream, {1, new id}.
inline constexpr const char* replay = R"lua(
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return {0} end
local fields = found[1][2]
local meta = #ARGV - 1
if #fields % 2 ~= 0 or #fields < 2 * meta + 2 then
  return {-1, 'has ' .. math.floor(#fields / 2) .. ' field(s); a dead letter has ' .. meta ..
              ' metadata fields and at least one original field'}
end
for i = 1, meta do
  if fields[2 * i - 1] ~= ARGV[i + 1] then
    return {-1, 'field ' .. i .. ' is "' .. fields[2 * i - 1] .. '", expected "' .. ARGV[i + 1] .. '"'}
  end
end
if fields[2] ~= KEYS[2] then return {-2, fields[2]} end
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'stream' then return {-3, kind} end
local original = {}
for i = 2 * meta + 1, #fields do original[#original + 1] = fields[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(original))
redis.call('XDEL', KEYS[1], ARGV[1])
return {1, id}
)lua";

// (Run with `ids` prepended.)
// KEYS[1] dead-letter stream. ARGV[1] "all": every entry present now; "age": the entries
// appended more than ARGV[2] ms ago (server clock). Returns {-2, type} for a key of
// another type, else {removed}.
inline constexpr const char* purge = R"lua(
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {0} end
if kind ~= 'stream' then return {-2, kind} end
local bound
if ARGV[1] == 'all' then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last == 0 then return {0} end
  bound = succ(last[1][1])
else
  local now = redis.call('TIME')
  local bound_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
  if bound_ms <= 0 then return {0} end
  bound = string.format('%.0f', bound_ms) .. '-0'
end
return {redis.call('XTRIM', KEYS[1], 'MINID', bound)}
)lua";

}  // namespace corvo::stream::detail::lua
