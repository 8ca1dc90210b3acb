-- Records that this node is alive (Redis clock) and returns whether it was still recorded (0:
-- it was reaped, or this is its first heartbeat), then the nodes silent for too long.
-- KEYS: nodes (zset node -> last heartbeat, ms)   ARGV: node, timeout in ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('ZADD', KEYS[1], now, ARGV[1]) == 0 and 1 or 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
table.insert(dead, 1, tostring(known))
return dead
