-- evsse fetch: read a topic's stream, for a resuming client, a back-fill
-- after a link drop, or (count 0) the epoch and tail when a watch begins.
--
-- KEYS[1]  the topic's stream    <prefix>{<topic>}:s
-- KEYS[2]  the stream's epoch    <prefix>{<topic>}:e  (a base-36 string)
-- KEYS[3]  the stream's writer   <prefix>{<topic>}:w  (see publish.lua)
-- KEYS[4]  the stream's forks    <prefix>{<topic>}:f  (see publish.lua)
-- ARGV[1]  after: the exclusive start id "ms-seq" ("0-0": from the start)
-- ARGV[2]  until: the inclusive end id "ms-seq"
-- ARGV[3]  count: the most entries to return; "0" reads no entries
-- ARGV[4]  candidate epoch (base 36), stored when the stream has none
-- ARGV[5]  this server's run_id: a stream last written by another server
--          is forked first, as in publish.lua (so a back-fill right after
--          a failover already knows where the old epoch ended); the
--          candidate epoch becomes the new one
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
--          forks        the stream's forks, newest first, each
--                       "<old epoch> <end>": the epoch continues the old
--                       one up to end (see publish.lua, "Failover")
-- Errors   WRONGTYPE when a key holds another type; ERR for a malformed id.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'', '0-0', '0-0', '0-0', {}, {}}
end
local writer = redis.call('GET', KEYS[3])
if ARGV[5] ~= '' and writer ~= ARGV[5] then
  -- As in publish.lua: end the epoch where this server's copy ends.
  redis.call('SET', KEYS[3], ARGV[5])
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then redis.call('PEXPIRE', KEYS[3], pttl) end
  local old_epoch = redis.call('GET', KEYS[2])
  if writer and old_epoch then
    local last = '0-0'
    local i0 = redis.call('XINFO', 'STREAM', KEYS[1])
    for i = 1, #i0, 2 do
      if i0[i] == 'last-generated-id' then last = i0[i + 1] end
    end
    redis.call('SET', KEYS[2], ARGV[4])
    redis.call('LPUSH', KEYS[4], old_epoch .. ' ' .. last)
    redis.call('LTRIM', KEYS[4], 0, 15)
    if pttl > 0 then
      redis.call('PEXPIRE', KEYS[2], pttl)
      redis.call('PEXPIRE', KEYS[4], pttl)
    end
  end
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  -- The epoch lives as long as its stream (see publish.lua's ARGV[6]).
  epoch = ARGV[4]
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('SET', KEYS[2], epoch, 'PX', ttl)
  else
    redis.call('SET', KEYS[2], epoch)
  end
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
return {epoch, max_deleted, first_kept, tail, entries,
        redis.call('LRANGE', KEYS[4], 0, -1)}
