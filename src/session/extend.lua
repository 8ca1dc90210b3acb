-- Extends an unchanged session (rustforge-prod's session::RedisStore): its key's expiry and the
-- expiry written in its value's first eight bytes, together, so the next read sees from the
-- value alone that it is not due again. A session deleted or expired meanwhile is not brought
-- back (PEXPIRE on a missing key does nothing, and SETRANGE runs only when it did something).
-- KEYS[1]: the session. ARGV[1]: the new TTL (ms). ARGV[2]: the new expiry as stored (8 bytes).
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 1 then
  redis.call('SETRANGE', KEYS[1], 0, ARGV[2])
  return 1
end
return 0
