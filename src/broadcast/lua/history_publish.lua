-- Publishes an event of a recoverable channel and keeps it in the channel's history, in one
-- step: the event gets the stream's next serial, so every server's subscribers and every
-- later resume see the same position.
-- KEYS: history (list), stream (hash: epoch, serial, o:<origin> -> "<last sequence kept> <ms>"),
--       recovery log (list)
-- ARGV: topic, origin (node.epoch), sequence, except, frame, epoch for a new stream,
--       events kept, history ttl ms, stream ttl ms, log (1/0), log length, log ttl s,
--       sharded (1/0)
-- Entries: "<serial>\n<ms>\n<except>\n<frame>". The published payload carries the position
-- after the excluded socket: "<origin>:<seq>\n<except> <position>\n<frame>".
-- Returns the serial, or 0 for an event this origin sent before (a batch sent again).
local origin = 'o:' .. ARGV[2]
local seq = tonumber(ARGV[3])
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local last = redis.call('HGET', KEYS[2], origin)
if last then
  if seq <= tonumber(string.match(last, '^%d+')) then
    return 0
  end
else
  -- A new origin (a server process that started): forget the origins that wrote nothing for a
  -- stream's idle time, so the hash does not grow with every deploy. Their batches are long
  -- settled. A value without a time is an older version's, which reads it as a number: left
  -- as it is (it goes with the hash when the channel is idle).
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    if string.sub(name, 1, 2) == 'o:' then
      local at = tonumber(string.match(value, ' (%d+)$'))
      if at and ms - at > tonumber(ARGV[9]) then
        redis.call('HDEL', KEYS[2], name)
      end
    end
  end
end
redis.call('HSET', KEYS[2], origin, seq .. ' ' .. ms)
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local serial = redis.call('HINCRBY', KEYS[2], 'serial', 1)
redis.call('RPUSH', KEYS[1], serial .. '\n' .. ms .. '\n' .. ARGV[4] .. '\n' .. ARGV[5])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[7]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
local payload = ARGV[2] .. ':' .. ARGV[3] .. '\n' .. ARGV[4] .. ' ' .. epoch .. ':' .. serial
  .. '\n' .. ARGV[5]
if ARGV[10] == '1' then
  redis.call('RPUSH', KEYS[3], payload)
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[11]), -1)
  redis.call('EXPIRE', KEYS[3], ARGV[12])
end
if ARGV[13] == '1' then
  redis.call('SPUBLISH', ARGV[1], payload)
else
  redis.call('PUBLISH', ARGV[1], payload)
end
return serial
