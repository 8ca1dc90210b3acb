-- A user's last connection to a presence channel on this node is gone.
-- KEYS: members, info, nodes (as in join.lua)
-- ARGV: node, user id
-- Returns 1 when the user left the channel cluster-wide (send member_removed), else 0.
local field = ARGV[1] .. '\n' .. ARGV[2]
local mine = tonumber(redis.call('HGET', KEYS[3], field) or '0')
if mine <= 0 then
  return 0 -- already reaped
end
if mine == 1 then
  redis.call('HDEL', KEYS[3], field)
else
  redis.call('HINCRBY', KEYS[3], field, -1)
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0
