-- Loads a session and extends an unchanged one (rustforge-prod's session::RedisStore).
-- KEYS[1]: the session's key. ARGV[1]: the inactivity timeout (ms): a key with less left than
-- that is extended. ARGV[2]: the expiry an extension sets (ms).
-- Returns nil when there is no session, else {record, 1 when extended else 0}.
local record = redis.call('GET', KEYS[1])
if not record then
  return nil
end
local left = redis.call('PTTL', KEYS[1])
if left >= 0 and left < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {record, 1}
end
return {record, 0}
