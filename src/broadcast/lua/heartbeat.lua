-- Records that this node is alive (Redis clock) and returns the nodes silent for too long.
-- KEYS: nodes (zset node -> last heartbeat, ms)   ARGV: node, timeout in ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
