-- evsse publish: store events in their topics' streams and broadcast each,
-- every event as one atomic step, so the id on the wire is the stream id.
-- One call carries the events a node published in one loop turn (one or
-- more), in order; each event has its own outcome.
--
-- For event i (1-based), KEYS[5i-4] .. KEYS[5i] are its topic's
--   stream    <prefix>{<topic>}:s
--   channel   <prefix>{<topic>}:c
--   epoch     <prefix>{<topic>}:e  (a base-36 string)
--   writer    <prefix>{<topic>}:w  (the run_id of the server that last
--             wrote the stream)
--   forks     <prefix>{<topic>}:f  (a list, newest first, of
--             "<old epoch> <end>": see "Failover" below)
-- ARGV[1]  MAXLEN ~ of the streams (a positive integer)
-- ARGV[2]  the most age of kept entries in milliseconds; "0": no age limit
-- ARGV[3]  candidate epoch (base 36): becomes the epoch when an event
--          creates its stream, or when the stream has none
-- ARGV[4]  time to live of a topic's keys in milliseconds, renewed as it is
--          published to, so a topic nobody publishes to disappears; "0":
--          the keys never expire
-- ARGV[5]  this server's run_id (INFO server); "": the node could not read
--          it (ACL), no forks are recorded
-- After the events' arguments, optionally "S": broadcast with SPUBLISH
--   (Redis Cluster's sharded pub/sub: the channel lives on the topic's
--   shard) instead of PUBLISH.
-- For event i, ARGV[3i+3], ARGV[3i+4], ARGV[3i+5] are its type (may be
--   empty), its data (any bytes), and "1" when the node asks for upkeep
--   (trim by age, renew the keys' time to live) with this event, "0" when
--   it had it done for this topic less than a second ago. A stream this
--   event creates always gets its time to live.
--
-- Failover. A stream whose writer is another server than this one was
-- copied here by replication (a failover promoted this server, or it
-- restarted from its files): the old server may have written entries that
-- never arrived, and ids this server hands out next may sort below them
-- (its clock may be behind the old one's). So the first touch ends the
-- stream's epoch where this server's copy ends and starts a new one (the
-- candidate, ARGV[3]), recording the fork "<old epoch> <end>", end being
-- the last id this server has: a cursor of the old epoch up to end reads
-- on in the new one; one past end names events that were lost (fetch.lua
-- returns the forks; the reader gets the gap event). No clock is trusted.
--
-- Result   one entry per event: {epoch, id} (the stream's epoch and the new
--          entry's id "ms-seq"), or the error that stopped that event
--          (WRONGTYPE when a key holds another type, OOM under maxmemory,
--          READONLY on a replica): that event is neither stored nor
--          broadcast, and the others are not affected. Entries have the
--          fields t (type) and d (data); the channel gets
--          epoch .. "\n" .. id .. "\n" .. type .. "\n" .. data.
local maxlen, max_age, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local run_id = ARGV[5]
local publish_cmd = ARGV[3 * (#KEYS / 5) + 6] == 'S' and 'SPUBLISH' or 'PUBLISH'
local now_ms -- this server's clock, read at most once per call
local function clock()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end

-- fork_if_moved records a fork when another server wrote the stream last.
local function fork_if_moved(stream, epoch_key, writer_key, forks_key)
  if run_id == '' then return end
  local writer = redis.call('GET', writer_key)
  if writer == run_id then return end
  redis.call('SET', writer_key, run_id)
  if not writer or redis.call('EXISTS', stream) == 0 then return end
  local old_epoch = redis.call('GET', epoch_key)
  if not old_epoch then return end
  local tail = '0-0'
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then tail = info[i + 1] end
  end
  redis.call('SET', epoch_key, ARGV[3])
  redis.call('LPUSH', forks_key, old_epoch .. ' ' .. tail)
  redis.call('LTRIM', forks_key, 0, 15)
  local pttl = redis.call('PTTL', stream)
  if pttl > 0 then
    redis.call('PEXPIRE', epoch_key, pttl)
    redis.call('PEXPIRE', forks_key, pttl)
  end
end

-- Topics seen in this call: their epoch, whether they have forks and
-- whether their stream was new.
local topics = {}
local function topic(i)
  local stream = KEYS[5 * i - 4]
  local t = topics[stream]
  if t then return t end
  local epoch_key, writer_key, forks_key =
      KEYS[5 * i - 2], KEYS[5 * i - 1], KEYS[5 * i]
  fork_if_moved(stream, epoch_key, writer_key, forks_key)
  t = {forked = false, created = false}
  if redis.call('EXISTS', stream) == 0 then
    -- A new stream is a new history: positions of an older one mean
    -- nothing.
    t.epoch, t.created = ARGV[3], true
    redis.call('SET', epoch_key, t.epoch)
  else
    t.epoch = redis.call('GET', epoch_key)
    if not t.epoch then
      t.epoch = ARGV[3]
      redis.call('SET', epoch_key, t.epoch)
    end
  end
  t.forked = redis.call('EXISTS', forks_key) == 1
  topics[stream] = t
  return t
end

local function publish(i)
  local t = topic(i)
  local stream, channel = KEYS[5 * i - 4], KEYS[5 * i - 3]
  local type_, data = ARGV[3 * i + 3], ARGV[3 * i + 4]
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                        't', type_, 'd', data)
  if ARGV[3 * i + 5] == '1' or t.created then
    t.created = false
    if max_age > 0 and clock() > max_age then
      -- Redis 7.0 takes one trim strategy per XADD: trim by age apart.
      redis.call('XTRIM', stream, 'MINID', '~',
                 string.format('%.0f', clock() - max_age))
    end
    if ttl > 0 then
      redis.call('PEXPIRE', stream, ttl)
      redis.call('PEXPIRE', KEYS[5 * i - 2], ttl)
      redis.call('PEXPIRE', KEYS[5 * i - 1], ttl)
      if t.forked then redis.call('PEXPIRE', KEYS[5 * i], ttl) end
    end
  end
  redis.call(publish_cmd, channel,
             t.epoch .. '\n' .. id .. '\n' .. type_ .. '\n' .. data)
  return {t.epoch, id}
end

local out = {}
for i = 1, #KEYS / 5 do
  -- An error (a redis.call's, raised as a table {err = ...}) stops this
  -- event only; writes an event made before it are not rolled back, but no
  -- event is broadcast unless it was stored.
  local ok, result = pcall(publish, i)
  if ok then
    out[i] = result
  elseif type(result) == 'table' and result.err then
    out[i] = result
  else
    out[i] = {err = tostring(result)}
  end
end
return out
