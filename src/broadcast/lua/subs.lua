-- Adds DELTA to this node's subscription count of a channel; a count of 0 is removed.
-- KEYS: subs (node -> subscriptions)   ARGV: node, delta
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[2]))
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
