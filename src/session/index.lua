-- Records a session in its user's index (rustforge-prod's session::RedisStore): a sorted set
-- of session ids scored by when they expire (unix ms), expiring with the latest of them.
-- KEYS[1]: the user's index. ARGV[1]: the session id. ARGV[2]: its expiry. ARGV[3]: now.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], last[2])
end
return 1
