"""The Lua that :mod:`flux_ui.pacing_redis` runs in Redis: a deployment's window and fair queue, one atomic step each.

Every script starts with the same prelude: the time is Redis's own (``TIME``: one clock for every replica),
a missing ``epoch`` means Redis lost the record (restarted empty, flushed, evicted), which holds every grant
back for a window and the widest margin, and what has aged out is cleared (sends past the window and the
widest margin any replica may use; unsent slots past the hold limit, taken as sent then; tickets whose lease
lapsed). Keys, all of one deployment under one hash tag (``flux-ui:{deployment}:``), in this order:

1. ``state`` hash: ``epoch``, ``blocked`` (ms: 429 hold-backs and the reset guard), ``seq`` (join order), ``grants``
2. ``sent`` sorted set: slot id → when its request left (ms)
3. ``held`` sorted set: slot id → when it was granted (ms); counts as sent *now* until marked
4. ``tickets`` hash: ticket id → ``seq|order|user`` (waiting, every replica's)
5. ``leases`` sorted set: ticket id → when it lapses unless its waiter refreshes it (ms)
6. ``served`` sorted set: user → the number of their last grant (the round's memory)

Common arguments: ARGV[1] window ms, ARGV[2] the widest margin ms, ARGV[3] the hold limit ms, ARGV[4] the
pub/sub channel that wakes every replica's waiters.
"""

from __future__ import annotations

#: Users whose last grant is remembered (as :data:`flux_ui.fair_queue._SERVED_KEPT`).
SERVED_KEPT = 1024

PRELUDE = """
local window, widest, hold, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local changed, reset = false, 0
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  -- Sends made before the record was lost are unknown: none may be granted on top of them.
  local was = tonumber(redis.call('HGET', KEYS[1], 'blocked') or '0')
  redis.call('HSET', KEYS[1], 'epoch', t[1] .. '.' .. t[2], 'blocked', tostring(math.max(was, now + window + widest)))
  reset = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window - widest)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - hold, 'WITHSCORES')
for i = 1, #stale, 2 do
  redis.call('ZADD', KEYS[2], tonumber(stale[i + 1]) + hold, stale[i])
  redis.call('ZREM', KEYS[3], stale[i])
end
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
for _, id in ipairs(lapsed) do
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  changed = true
end
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked') or '0')
"""

#: ARGV[5] requests per window, ARGV[6] the caller's margin ms, ARGV[7] lease ms, ARGV[8] the per-user cap
#: (0: none), then four per local ticket: id, user, order, mode (c: join within the cap, u: join, w: waiting).
#: Joins (or re-adds a lost ticket), refreshes the leases, and grants the global head if it is one of the
#: caller's and a slot is free. Returns {granted, now, blocked, held, sent stamps, head, head wait ms,
#: refused (id, count…), users in round order (user, count…), reset}; the stamps as one comma-separated string.
STEP = PRELUDE + """
local requests, margin, lease, cap = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local all = redis.call('HGETALL', KEYS[4])
local count = {}
for i = 2, #all, 2 do
  local user = string.match(all[i], '^[^|]*|[^|]*|(.*)$')
  count[user] = (count[user] or 0) + 1
end
local mine, refused = {}, {}
for i = 9, #ARGV, 4 do
  local id, user, order, mode = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HEXISTS', KEYS[4], id) == 0 then
    if mode == 'c' and cap > 0 and (count[user] or 0) >= cap then
      table.insert(refused, id)
      table.insert(refused, count[user] or 0)
    else
      local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
      redis.call('HSET', KEYS[4], id, seq .. '|' .. order .. '|' .. user)
      count[user] = (count[user] or 0) + 1
      changed = true
    end
  end
  if redis.call('HEXISTS', KEYS[4], id) == 1 then
    mine[id] = true
    redis.call('ZADD', KEYS[5], now + lease, id)
  end
end
-- Each user's first ticket (their own order, then who joined first) and when they joined first.
all = redis.call('HGETALL', KEYS[4])
local first, since, users = {}, {}, {}
for i = 1, #all, 2 do
  local seq, order, user = string.match(all[i + 1], '^([^|]*)|([^|]*)|(.*)$')
  seq, order = tonumber(seq), tonumber(order)
  local best = first[user]
  if best == nil then
    table.insert(users, user)
    since[user] = seq
  else
    since[user] = math.min(since[user], seq)
  end
  if best == nil or order < best[2] or (order == best[2] and seq < best[3]) then
    first[user] = {all[i], order, seq}
  end
end
local served = {}
for _, user in ipairs(users) do
  served[user] = tonumber(redis.call('ZSCORE', KEYS[6], user) or '-1')
end
table.sort(users, function(a, b)
  if served[a] ~= served[b] then return served[a] < served[b] end
  return since[a] < since[b]
end)
-- The window: sends within window + the caller's margin, then every held slot as if sent now.
local stamps = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - window - margin), '+inf', 'WITHSCORES')
local held = redis.call('ZCARD', KEYS[3])
local function wait_ms()
  local used, sent = #stamps / 2 + held, #stamps / 2
  local wait = 0
  if used >= requests then
    local idx = used - requests
    local oldest = now
    if idx < sent then oldest = tonumber(stamps[idx * 2 + 2]) end
    wait = oldest + window + margin - now
  end
  return math.max(wait, blocked - now, 0)
end
local head = (#users > 0) and first[users[1]][1] or ''
local wait, granted = wait_ms(), ''
if head ~= '' and mine[head] and wait <= 0 then
  local user = users[1]
  redis.call('HDEL', KEYS[4], head)
  redis.call('ZREM', KEYS[5], head)
  redis.call('ZADD', KEYS[3], now, head)
  local g = redis.call('HINCRBY', KEYS[1], 'grants', 1)
  redis.call('ZADD', KEYS[6], g, user)
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -""" + str(SERVED_KEPT + 1) + """)
  granted, held, changed = head, held + 1, true
  table.remove(users, 1)
  count[user] = count[user] - 1
  if count[user] > 0 then table.insert(users, user) end
  head = (#users > 0) and first[users[1]][1] or ''
  if head == granted then head = '' end
  wait = wait_ms()
end
if changed then redis.call('PUBLISH', channel, granted ~= '' and 'grant' or 'change') end
local round = {}
for _, user in ipairs(users) do
  table.insert(round, user)
  table.insert(round, count[user])
end
local sent = {}  -- the newest `requests` sends are all a window's arithmetic needs
for i = math.max(2, #stamps - 2 * requests + 2), #stamps, 2 do table.insert(sent, stamps[i]) end
return {granted, tostring(now), tostring(blocked), held, table.concat(sent, ','), head, tostring(wait),
        refused, round, reset}
"""

#: ARGV[5] the slot id: its request left now (or its waiter let it go unsent: it keeps this stamp). A slot the
#: record lost (Redis restarted since its grant) is recorded anyway.
MARK = PRELUDE + """
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[5])
return tostring(now)
"""

#: ARGV[5…] slot ids granted before Redis lost the record and not yet sent: held again from now.
HOLD = PRELUDE + """
for i = 5, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) == false then redis.call('ZADD', KEYS[3], now, ARGV[i]) end
end
return reset
"""

#: ARGV[5] ms: the service answered 429, hold every replica back that long (the longest hold wins).
PENALIZE = PRELUDE + """
blocked = math.max(blocked, now + tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'blocked', tostring(blocked))
redis.call('PUBLISH', channel, 'penalty')
return tostring(blocked)
"""

#: ARGV[5] the ticket id: it stops waiting (cancelled, timed out, its task gone).
LEAVE = PRELUDE + """
if redis.call('HDEL', KEYS[4], ARGV[5]) == 1 then changed = true end
redis.call('ZREM', KEYS[5], ARGV[5])
if changed then redis.call('PUBLISH', channel, 'leave') end
return reset
"""
