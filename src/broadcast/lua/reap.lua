-- Removes everything a (dead or stopping) node held in one channel.
-- KEYS: members, info, nodes, subs   ARGV: node
-- Returns 1 when the channel has no subscription left anywhere (send channel_vacated), else 0,
-- then the users that left the channel cluster-wide (send member_removed for each).
local prefix = ARGV[1] .. '\n'
local removed = {}
local entries = redis.call('HGETALL', KEYS[3])
for i = 1, #entries, 2 do
  local field = entries[i]
  if string.sub(field, 1, #prefix) == prefix then
    local user = string.sub(field, #prefix + 1)
    redis.call('HDEL', KEYS[3], field)
    local n = redis.call('HINCRBY', KEYS[1], user, -tonumber(entries[i + 1]))
    if n <= 0 then
      redis.call('HDEL', KEYS[1], user)
      redis.call('HDEL', KEYS[2], user)
      table.insert(removed, user)
    end
  end
end
local held = redis.call('HDEL', KEYS[4], ARGV[1])
local vacated = 0
if held == 1 and redis.call('HLEN', KEYS[4]) == 0 then
  vacated = 1
end
table.insert(removed, 1, vacated)
return removed
