// The Lua scripts evsse runs on Redis, as raw string literals. The same text
// is in publish.lua and fetch.lua next to this file, for reading; a test
// checks that both copies agree. Each script opens with its inputs, result
// and errors.
#ifndef EVSSE_REDIS_SCRIPTS_H_
#define EVSSE_REDIS_SCRIPTS_H_

namespace evsse::redis {

inline constexpr char kPublishScript[] = R"lua(
-- evsse publish: store one event in a topic's stream and broadcast it, as
-- one atomic step, so the id on the wire is the stream id.
--
-- KEYS[1]  the topic's stream    <prefix>{<topic>}:s
-- KEYS[2]  the topic's channel   <prefix>{<topic>}:c
-- KEYS[3]  the stream's epoch    <prefix>{<topic>}:e  (a base-36 string)
-- ARGV[1]  MAXLEN ~ of the stream (a positive integer)
-- ARGV[2]  the most age of kept entries in milliseconds; "0": no age limit
-- ARGV[3]  event type (may be empty)
-- ARGV[4]  event data (any bytes)
-- ARGV[5]  candidate epoch (base 36): becomes the epoch when this call
--          creates the stream, or when the stream has none
--
-- Result   {epoch, id}: the stream's epoch and the new entry's id "ms-seq".
--          The entry's fields are t (type) and d (data); the channel gets
--          epoch .. "\n" .. id .. "\n" .. type .. "\n" .. data.
-- Errors   a Redis error of XADD, XTRIM or SET (WRONGTYPE when a key holds
--          another type, OOM under maxmemory) ends the script: nothing is
--          broadcast.
local epoch
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- A new stream is a new history: positions of an older one mean nothing.
  epoch = ARGV[5]
  redis.call('SET', KEYS[3], epoch)
else
  epoch = redis.call('GET', KEYS[3])
  if not epoch then
    epoch = ARGV[5]
    redis.call('SET', KEYS[3], epoch)
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                      't', ARGV[3], 'd', ARGV[4])
local max_age = tonumber(ARGV[2])
if max_age > 0 then
  -- Redis 7.0 takes one trim strategy per XADD: trim by age separately.
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now_ms > max_age then
    redis.call('XTRIM', KEYS[1], 'MINID', '~',
               string.format('%.0f', now_ms - max_age))
  end
end
redis.call('PUBLISH', KEYS[2],
           epoch .. '\n' .. id .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {epoch, id}
)lua";

inline constexpr char kFetchScript[] = R"lua(
-- evsse fetch: read a topic's stream, for a resuming client, a back-fill
-- after a link drop, or (count 0) the epoch and tail when a watch begins.
--
-- KEYS[1]  the topic's stream    <prefix>{<topic>}:s
-- KEYS[2]  the stream's epoch    <prefix>{<topic>}:e  (a base-36 string)
-- ARGV[1]  after: the exclusive start id "ms-seq" ("0-0": from the start)
-- ARGV[2]  until: the inclusive end id "ms-seq"
-- ARGV[3]  count: the most entries to return; "0" reads no entries
-- ARGV[4]  candidate epoch (base 36), stored when the stream has none
--
-- Result   {epoch, max_deleted, first_kept, tail, entries}
--          epoch        the stream's epoch; "" when the stream does not exist
--          max_deleted  the newest id removed by XDEL ("0-0": none); Redis
--                       7.0 does not count trimming here
--          first_kept   when entries were ever removed (entries-added >
--                       length): the first id the stream still has, every
--                       older entry is gone; "0-0" when none was removed.
--                       A cursor older than it, or older than max_deleted,
--                       missed entries.
--          tail         the id of the stream's last entry ("0-0": none)
--          entries      XRANGE (after until COUNT count:
--                       {{id, {field, value, ...}}, ...}, fields t and d
-- Errors   WRONGTYPE when a key holds another type; ERR for a malformed id.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'', '0-0', '0-0', '0-0', {}}
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
end
local max_deleted = '0-0'
local first = '0-0'
local tail = '0-0'
local length = 0
local added = 0
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  local k, v = info[i], info[i + 1]
  if k == 'max-deleted-entry-id' then
    max_deleted = v
  elseif k == 'recorded-first-entry-id' then
    first = v
  elseif k == 'length' then
    length = v
  elseif k == 'entries-added' then
    added = v
  elseif k == 'last-entry' and v then
    tail = v[1]
  end
end
local first_kept = '0-0'
if added > length then
  first_kept = first
end
local entries = {}
if tonumber(ARGV[3]) > 0 then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2],
                       'COUNT', ARGV[3])
end
return {epoch, max_deleted, first_kept, tail, entries}
)lua";

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_SCRIPTS_H_
