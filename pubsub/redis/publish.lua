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
-- ARGV[6]  time to live of the topic's keys in milliseconds, renewed by
--          every publish, so a topic nobody publishes to disappears; "0":
--          the keys never expire
--
-- Result   {epoch, id}: the stream's epoch and the new entry's id "ms-seq".
--          The entry's fields are t (type) and d (data); the channel gets
--          epoch .. "\n" .. id .. "\n" .. type .. "\n" .. data.
-- Errors   a Redis error of XADD, XTRIM, SET or PEXPIRE (WRONGTYPE when a key holds
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
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('PUBLISH', KEYS[2],
           epoch .. '\n' .. id .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {epoch, id}
