-- evsse publish: store events in their topics' streams and broadcast each,
-- every event as one atomic step, so the id on the wire is the stream id.
-- One call carries the events a node published in one loop turn (one or
-- more), in order; each event has its own outcome.
--
-- For event i (1-based), KEYS[3i-2], KEYS[3i-1], KEYS[3i] are its topic's
--   stream    <prefix>{<topic>}:s
--   channel   <prefix>{<topic>}:c
--   epoch     <prefix>{<topic>}:e  (a base-36 string)
-- ARGV[1]  MAXLEN ~ of the streams (a positive integer)
-- ARGV[2]  the most age of kept entries in milliseconds; "0": no age limit
-- ARGV[3]  candidate epoch (base 36): becomes the epoch when an event
--          creates its stream, or when the stream has none
-- ARGV[4]  time to live of a topic's keys in milliseconds, renewed as it is
--          published to, so a topic nobody publishes to disappears; "0":
--          the keys never expire
-- For event i, ARGV[3i+2], ARGV[3i+3], ARGV[3i+4] are
--   its type (may be empty), its data (any bytes), and "1" when the node
--   asks for upkeep (trim by age, renew the keys' time to live) with this
--   event, "0" when it had it done for this topic less than a second ago.
--   A stream this event creates always gets its time to live.
--
-- Result   one entry per event: {epoch, id} (the stream's epoch and the new
--          entry's id "ms-seq"), or the error of XADD, SET or GET that
--          stopped that event (WRONGTYPE when a key holds another type, OOM
--          under maxmemory): that event is neither stored nor broadcast,
--          and the others are not affected. Entries have the fields t (type)
--          and d (data); the channel gets
--          epoch .. "\n" .. id .. "\n" .. type .. "\n" .. data.
local maxlen, max_age, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local function failed(r)
  return type(r) == 'table' and r.err ~= nil
end
local cutoff -- "now - max_age" as a stream id, read once per call
local epochs = {} -- epoch key -> epoch, for topics seen in this call
local out = {}
for i = 1, #KEYS / 3 do
  local stream, channel, epoch_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local t, d = ARGV[3 * i + 2], ARGV[3 * i + 3]
  local upkeep = ARGV[3 * i + 4] == '1'
  local result
  repeat
    local epoch = epochs[epoch_key]
    if not epoch then
      local r
      if redis.call('EXISTS', stream) == 0 then
        -- A new stream is a new history: positions of an older one mean
        -- nothing.
        epoch, upkeep = ARGV[3], true
        r = redis.pcall('SET', epoch_key, epoch)
      else
        r = redis.pcall('GET', epoch_key)
        if not failed(r) then
          if r then
            epoch = r
          else
            epoch = ARGV[3]
            r = redis.pcall('SET', epoch_key, epoch)
          end
        end
      end
      if failed(r) then
        result = r
        break
      end
    end
    local id = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                           't', t, 'd', d)
    if failed(id) then
      result = id
      break
    end
    epochs[epoch_key] = epoch
    if upkeep then
      if max_age > 0 then
        if not cutoff then
          -- Redis 7.0 takes one trim strategy per XADD: trim by age apart.
          local now = redis.call('TIME')
          local now_ms = tonumber(now[1]) * 1000 +
                         math.floor(tonumber(now[2]) / 1000)
          cutoff = now_ms > max_age and
                   string.format('%.0f', now_ms - max_age) or false
        end
        if cutoff then redis.pcall('XTRIM', stream, 'MINID', '~', cutoff) end
      end
      if ttl > 0 then
        redis.pcall('PEXPIRE', stream, ttl)
        redis.pcall('PEXPIRE', epoch_key, ttl)
      end
    end
    redis.call('PUBLISH', channel, epoch .. '\n' .. id .. '\n' .. t .. '\n' .. d)
    result = {epoch, id}
  until true
  out[i] = result
end
return out
