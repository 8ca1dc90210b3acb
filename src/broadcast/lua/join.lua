-- A user's first connection to a presence channel on this node.
-- KEYS: members (user -> connections, cluster-wide), info (user -> user_info),
--       nodes ("node\nuser" -> connections on that node), subs (node -> subscriptions)
-- ARGV: node, user id, user_info JSON
-- Returns: { "1" if the user is new cluster-wide else "0", user, info, user, info ... }
local field = ARGV[1] .. '\n' .. ARGV[2]
redis.call('HINCRBY', KEYS[3], field, 1)
local n = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if n == 1 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, n == 1 and '1' or '0')
return reply
