-- Makes Redis hold exactly this node's local state of one channel (idempotent): after a Redis
-- restart that lost the data, or an outage during which joins and leaves could not be written.
-- KEYS: members, info, nodes, subs
-- ARGV: node, local subscriptions, number of users, then per user: id, local connections, info
-- Returns the number of users that left the channel cluster-wide (send member_removed for
-- each), those users, then the users that are new cluster-wide (send member_added to the other
-- servers: after this node was reaped while it could not heartbeat, its users are back).
local node = ARGV[1]
local prefix = node .. '\n'
local subs = tonumber(ARGV[2])
if subs > 0 then
  redis.call('HSET', KEYS[4], node, subs)
else
  redis.call('HDEL', KEYS[4], node)
end
local wanted, infos = {}, {}
for i = 0, tonumber(ARGV[3]) - 1 do
  local id = ARGV[4 + i * 3]
  wanted[id] = tonumber(ARGV[5 + i * 3])
  infos[id] = ARGV[6 + i * 3]
end
local had = {}
local entries = redis.call('HGETALL', KEYS[3])
for i = 1, #entries, 2 do
  local field = entries[i]
  if string.sub(field, 1, #prefix) == prefix then
    had[string.sub(field, #prefix + 1)] = tonumber(entries[i + 1])
  end
end
local removed = {}
for user, old in pairs(had) do
  local new = wanted[user] or 0
  if new ~= old then
    if new == 0 then
      redis.call('HDEL', KEYS[3], prefix .. user)
    else
      redis.call('HSET', KEYS[3], prefix .. user, new)
    end
    local total = redis.call('HINCRBY', KEYS[1], user, new - old)
    if total <= 0 then
      redis.call('HDEL', KEYS[1], user)
      redis.call('HDEL', KEYS[2], user)
      table.insert(removed, user)
    end
  end
end
local added = {}
for user, new in pairs(wanted) do
  if had[user] == nil then
    redis.call('HSET', KEYS[3], prefix .. user, new)
    local total = redis.call('HINCRBY', KEYS[1], user, new)
    redis.call('HSETNX', KEYS[2], user, infos[user])
    if total == new then
      table.insert(added, user)
    end
  end
end
local reply = { #removed }
for _, user in ipairs(removed) do table.insert(reply, user) end
for _, user in ipairs(added) do table.insert(reply, user) end
return reply
