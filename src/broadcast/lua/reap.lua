-- Removes everything a (dead or stopping) node held in one channel.
-- KEYS: members, info, nodes, subs   ARGV: node
-- Returns the users that left the channel cluster-wide (send member_removed for each).
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
redis.call('HDEL', KEYS[4], ARGV[1])
return removed
