"""The server-side scripts of the inboxes: each write of a delivery, change, acknowledgement
or expiry happens whole or not at all (a script runs atomically, and the server refuses a
script's first write, never a later one, when it is out of memory).

Keys are passed in ``KEYS`` (every one shares the ``{liaison}`` hash tag); see
:mod:`services.core.streams` for what each holds. Every ``alert`` argument is an alert key (:func:`~services.core.streams.alert_key`,
``<origin>/<id>``): two units' alerts with the same id never share a field; feed entries
name the alert by ``alert_id`` and ``alert_source``.
"""

from __future__ import annotations

# KEYS[1] = deadlines, KEYS[2] = inbox expiry; then per delivery: inbox, order, recipients,
# feed, views. ARGV[1] = feed maxlen; then per delivery: alert key, unit, delivery JSON (the
# event left out), score, view, deadline ('' for none), the view's field in the views hash,
# the view's JSON ('' when an earlier delivery of this call carried it), expiry ('' likewise),
# the alert's origin and id. Per delivery: 1 if stored now, else the delivery stored before
# (a redelivery changes nothing).
DELIVER = """
local out = {}
for i = 0, (#KEYS - 2) / 5 - 1 do
  local k, a = 3 + i * 5, 2 + i * 11
  local alert, unit = ARGV[a], ARGV[a + 1]
  if ARGV[a + 7] ~= '' then
    redis.call('HSETNX', KEYS[k + 4], ARGV[a + 6], ARGV[a + 7])
  end
  local created = redis.call('HSETNX', KEYS[k], alert, ARGV[a + 2])
  redis.call('ZADD', KEYS[k + 1], 'NX', ARGV[a + 3], alert)
  redis.call('HSETNX', KEYS[k + 2], unit, ARGV[a + 4])
  if ARGV[a + 5] ~= '' then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[a + 5], unit .. '\\n' .. alert)
  end
  if ARGV[a + 8] ~= '' then
    redis.call('ZADD', KEYS[2], 'GT', ARGV[a + 8], alert)
  end
  if created == 1 then
    redis.call('XADD', KEYS[k + 3], 'MAXLEN', '~', ARGV[1], '*',
               'kind', 'delivered', 'alert_id', ARGV[a + 10], 'alert_source', ARGV[a + 9])
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call('HGET', KEYS[k], alert)
  end
end
return out
"""

# KEYS = views, the unit's changes of this alert, feed, inbox expiry.
# ARGV = the copy's field in the views hash, its JSON, change id, reference JSON, feed maxlen,
# feed kind, alert key, expiry, alert origin, alert id. 1 if the unit got the change now.
CHANGE = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local created = redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[4], 'GT', ARGV[8], ARGV[7])
if created == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'kind', ARGV[6],
             'alert_id', ARGV[10], 'alert_source', ARGV[9])
end
return created
"""

# KEYS = inbox, acks, deadlines, feed, seen (this window), seen (previous), receipts stream,
# inbox expiry. ARGV = alert key, ack JSON, deadline member, feed maxlen, seen field, receipt,
# seen TTL, expiry, alert origin, alert id. nil if the unit never got the alert; else {1 if
# acknowledged now, the ack in force}.
ACKNOWLEDGE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return false
end
local created = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
if created == 1 then
  if not (redis.call('HGET', KEYS[5], ARGV[5]) or redis.call('HGET', KEYS[6], ARGV[5])) then
    local entry = redis.call('XADD', KEYS[7], '*', '__data__', ARGV[6])
    redis.call('HSET', KEYS[5], ARGV[5], entry)
    redis.call('EXPIRE', KEYS[5], ARGV[7])
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*',
             'kind', 'acknowledged', 'alert_id', ARGV[10], 'alert_source', ARGV[9])
  redis.call('ZADD', KEYS[8], 'GT', ARGV[8], ARGV[1])
end
return {created, redis.call('HGET', KEYS[2], ARGV[1])}
"""

# KEYS[1..5] = inbox expiry, the alert's recipients, its views, deadlines, the register of
# alert origins; then per recipient: inbox, order, acks, escalations, changes, webhook
# outcomes; then the notices hashes of the coordinators told of it. ARGV = alert key, now,
# number of recipients, each recipient, then each notice's field (one per notices hash), then
# the alert's id and source (taken off its id's entry of the register: the register would
# otherwise keep every alert ever delivered). 0 if the alert was touched
# since it fell due (its expiry moved on): nothing is removed. Deletions only, so it runs
# on a server that is out of memory too.
EXPIRE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > tonumber(ARGV[2]) then
  return 0
end
local alert, units = ARGV[1], tonumber(ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3])
for i = 0, units - 1 do
  local k = 6 + i * 6
  redis.call('HDEL', KEYS[k], alert)
  redis.call('ZREM', KEYS[k + 1], alert)
  redis.call('HDEL', KEYS[k + 2], alert)
  redis.call('HDEL', KEYS[k + 3], alert)
  redis.call('DEL', KEYS[k + 4], KEYS[k + 5])
  redis.call('ZREM', KEYS[4], ARGV[4 + i] .. '\\n' .. alert)
end
for j = 6 + units * 6, #KEYS do
  redis.call('HDEL', KEYS[j], ARGV[4 + units + j - (6 + units * 6)])
end
local id, source = ARGV[#ARGV - 1], ARGV[#ARGV]
local known = redis.call('HGET', KEYS[5], id)
if known then
  local kept = {}
  for each in string.gmatch(known, '%S+') do
    if each ~= source then kept[#kept + 1] = each end
  end
  if #kept == 0 then
    redis.call('HDEL', KEYS[5], id)
  else
    redis.call('HSET', KEYS[5], id, table.concat(kept, ' '))
  end
end
redis.call('ZREM', KEYS[1], alert)
return 1
"""
