-- Adds DELTA to this node's subscription count of a channel; a count of 0 is removed.
-- KEYS: subs (node -> subscriptions)   ARGV: node, delta
-- Returns the channel's subscriptions on every node together (0 -> 1: occupied, 1 -> 0: vacated).
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[2]))
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local total = 0
for _, count in ipairs(redis.call('HVALS', KEYS[1])) do
  total = total + tonumber(count)
end
return total
