-- rustforge-prod rate limiter: checks every limit of one request, then commits all or none.
-- The same steps as src/ratelimit/algorithm.rs (the memory store); keep the two in step.
--
-- KEYS[i]  one key per limit, all with the same hash tag (one Cluster slot)
-- ARGV[1]  clock offset in µs (always 0 outside tests), ARGV[2] a unique nonce, ARGV[3] cost,
--          then per limit: algorithm, quota, period (µs), burst
-- returns  { allowed (0/1), then per limit: remaining, reset_after µs, retry_after µs or -1 }
--
-- Time is Redis TIME, rebased to 2026-01-01 so a double keeps sub-µs precision for decades.
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1767225600) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
local nonce = ARGV[2]
local cost = tonumber(ARGV[3])
local SLACK = 0.25
local EPS = 1e-6

local function count_down(x)
  local n = math.floor(x + EPS)
  if n < 0 then return 0 end
  return n
end
local function ceil_us(x)
  if x < 0 then return 0 end
  return math.ceil(x)
end
local function field(x) return string.format('%.0f', x) end

local out = { 1 }
local commits = {}

for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 3 + (i - 1) * 4
  local algo = ARGV[base + 1]
  local quota = tonumber(ARGV[base + 2])
  local w = tonumber(ARGV[base + 3])
  local burst = tonumber(ARGV[base + 4])
  local remaining, reset, retry, commit

  if algo == 'gcra' then
    local T = w / quota
    local tol = T * burst
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local new_tat = tat + T * cost
    local diff = now - (new_tat - tol)
    if diff < -SLACK then
      remaining, reset, retry = count_down((now + tol - tat) / T), ceil_us(tat - now), ceil_us(-diff)
    else
      if diff < 0 then diff = 0 end
      remaining, reset, retry = count_down(diff / T), ceil_us(new_tat - now), -1
      commit = function()
        redis.call('SET', key, string.format('%.17g', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
      end
    end

  elseif algo == 'sliding-window' then
    local idx = math.floor(now / w)
    local elapsed = now - idx * w
    local counts = redis.call('HMGET', key, field(idx), field(idx - 1))
    local cur = tonumber(counts[1]) or 0
    local prev = tonumber(counts[2]) or 0
    local est = prev * (1 - elapsed / w) + cur
    if est + cost > quota + EPS then
      local wait
      if cur + cost <= quota then
        wait = (1 - (quota - cost - cur) / prev) * w - elapsed
      else
        wait = (w - elapsed) + (1 - (quota - cost) / cur) * w
      end
      if wait < 1 then wait = 1 end
      if cur > 0 then reset = 2 * w - elapsed else reset = w - elapsed end
      remaining, reset, retry = count_down(quota - est), ceil_us(reset), ceil_us(wait)
    else
      remaining, reset, retry = count_down(quota - est - cost), ceil_us(2 * w - elapsed), -1
      commit = function()
        redis.call('HINCRBY', key, field(idx), cost)
        redis.call('HDEL', key, field(idx - 2))
        redis.call('PEXPIRE', key, math.ceil(2 * w / 1000))
      end
    end

  elseif algo == 'fixed-window' then
    local state = redis.call('HMGET', key, 'e', 'c')
    local e = tonumber(state[1])
    local c = tonumber(state[2]) or 0
    if e == nil or e <= now then e, c = now + w, 0 end
    if c + cost > quota then
      remaining, reset, retry = math.max(0, quota - c), ceil_us(e - now), ceil_us(e - now)
    else
      remaining, reset, retry = quota - c - cost, ceil_us(e - now), -1
      commit = function()
        redis.call('HSET', key, 'e', string.format('%.17g', e), 'c', c + cost)
        redis.call('PEXPIRE', key, math.max(1, math.ceil((e - now) / 1000)))
      end
    end

  elseif algo == 'sliding-log' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', field(now - w))
    local count = redis.call('ZCARD', key)
    if count + cost > quota then
      local freeing = tonumber(redis.call('ZRANGE', key, count + cost - quota - 1, count + cost - quota - 1, 'WITHSCORES')[2])
      local last = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]) or now
      remaining, reset, retry = math.max(0, quota - count), ceil_us(last + w - now), ceil_us(freeing + w - now)
    else
      remaining, reset, retry = quota - count - cost, ceil_us(w), -1
      commit = function()
        for n = 1, cost do
          redis.call('ZADD', key, field(now), nonce .. ':' .. n)
        end
        redis.call('PEXPIRE', key, math.ceil(w / 1000))
      end
    end

  else
    return redis.error_reply('unknown algorithm ' .. tostring(algo))
  end

  if retry >= 0 then out[1] = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
  commits[i] = commit
end

if out[1] == 1 then
  for i = 1, #KEYS do commits[i]() end
else
  -- Limits that had room consumed nothing: report what they still have.
  for i = 1, #KEYS do
    if commits[i] then out[2 + (i - 1) * 3] = out[2 + (i - 1) * 3] + cost end
  end
end
return out
