-- evsse publish: store one event in a topic's stream and broadcast it, as
-- one atomic step, so the id on the wire is the stream id.
--
-- KEYS[1]  the topic's stream    <prefix>{<topic>}:s
-- KEYS[2]  the topic's channel   <prefix>{<topic>}:c
-- KEYS[3]  the stream's epoch    <prefix>{<topic>}:e  (a base-36 string)
-- KEYS[4]  the stream's writer   <prefix>{<topic>}:w  (the run_id of the
--          server that last wrote it)
-- KEYS[5]  the stream's forks    <prefix>{<topic>}:f  (a list, newest
--          first, of "<tail> <floor_ms>": see "Failover" below)
-- ARGV[1]  MAXLEN ~ of the stream (a positive integer)
-- ARGV[2]  the most age of kept entries in milliseconds; "0": no age limit
-- ARGV[3]  event type (may be empty)
-- ARGV[4]  event data (any bytes)
-- ARGV[5]  candidate epoch (base 36): becomes the epoch when this call
--          creates the stream, or when the stream has none
-- ARGV[6]  time to live of the topic's keys in milliseconds, renewed by
--          every publish, so a topic nobody publishes to disappears; "0":
--          the keys never expire
-- ARGV[7]  this server's run_id (INFO server)
--
-- Failover. A stream whose writer is another server than this one was
-- copied here by replication (a failover promoted this server, or it
-- restarted from its files): the old server may have written entries that
-- never arrived. The first touch records a fork "<tail> <floor_ms>": tail
-- is the last id this server has, floor_ms the larger of tail's time and
-- this server's clock. Ids in (tail, floor_ms-*] may have been handed out
-- by the old server and are gone: a reader there missed events (fetch.lua
-- reports it). New entries get ids above floor_ms, so none sorts below an
-- id a client may hold from the old server.
--
-- Result   {epoch, id}: the stream's epoch and the new entry's id "ms-seq".
--          The entry's fields are t (type) and d (data); the channel gets
--          epoch .. "\n" .. id .. "\n" .. type .. "\n" .. data.
-- Errors   a Redis error of XADD, XTRIM, SET or PEXPIRE (WRONGTYPE when a key holds
--          another type, OOM under maxmemory) ends the script: nothing is
--          broadcast.
local function fork_if_moved()
  -- '' : the node could not read this server's run_id (ACL): no forks.
  if ARGV[7] == '' then return end
  local writer = redis.call('GET', KEYS[4])
  if writer == ARGV[7] then return end
  redis.call('SET', KEYS[4], ARGV[7])
  if not writer or redis.call('EXISTS', KEYS[1]) == 0 then return end
  local tail = '0-0'
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then tail = info[i + 1] end
  end
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local tail_ms = tonumber(string.match(tail, '^(%d+)'))
  local floor_ms = math.max(now_ms, tail_ms)
  redis.call('LPUSH', KEYS[5], tail .. ' ' .. string.format('%.0f', floor_ms))
  redis.call('LTRIM', KEYS[5], 0, 15)
end
fork_if_moved()
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
-- Above the newest fork's floor (see "Failover").
local new_id = '*'
local newest_fork = redis.call('LINDEX', KEYS[5], 0)
if newest_fork then
  local floor_ms = tonumber(string.match(newest_fork, ' (%d+)$'))
  local t = redis.call('TIME')
  local t_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if t_ms <= floor_ms then
    new_id = string.format('%.0f', floor_ms + 1) .. '-*'
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], new_id,
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
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
  if newest_fork then redis.call('PEXPIRE', KEYS[5], ttl) end
end
redis.call('PUBLISH', KEYS[2],
           epoch .. '\n' .. id .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {epoch, id}
