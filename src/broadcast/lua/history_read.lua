-- Reads a recoverable channel's stream: its epoch and last serial (a stream is started when
-- there is none, so that a client subscribing now has a position), the Redis clock, and, when
-- asked, the kept events oldest first.
-- KEYS: history (list), stream (hash)
-- ARGV: epoch for a new stream, stream ttl ms, events (1/0)
-- Returns {epoch, last serial, now ms, entries...}.
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'serial', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local serial = redis.call('HGET', KEYS[2], 'serial') or '0'
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local reply = { epoch, serial, tostring(ms) }
if ARGV[3] == '1' then
  for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    reply[#reply + 1] = entry
  end
end
return reply
