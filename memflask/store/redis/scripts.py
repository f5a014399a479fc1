"""The Redis store's Lua scripts: each verb is one atomic step on the server.

A script reads the item, checks the request's conditions and the verb's rules, writes,
and keeps the namespace's counters, in one round trip. Every key a script touches is in
one shard, and a shard's keys share a hash tag (one Redis Cluster slot):

    <prefix>{<shard>}item:<key>   hash: v (value), n (version), e (expiry, "" never),
                                  w (stale window, seconds), s (invalidated at)
    <prefix>{<shard>}lease:<key>  hash: t (token), u (until): a reader's lease
    <prefix>{<shard>}stats        hash: keys, hits, misses, expired, leases,
                                  staleAnswers, leaseFills
    <prefix>{<shard>}expiries     sorted set: key -> when the item goes, of the items
                                  that expire (its expiry, plus its stale window)

A stale item (invalidated, or past its expiry within the `stale` window it was written
with) is kept for lease readers (LEASE_READ_SCRIPT) and read as absent by every other
script; it counts in `keys` until it goes, so /stats's keyCount on Redis includes it.

`keys` counts the items held, expired or not; `/stats` subtracts the items past their
expiry (ZCOUNT of `expiries` up to now), so keyCount is exact in O(shards). An item past
its expiry is reclaimed (deleted, counted in `expired`) when a script meets it, and each
write reclaims a few more, oldest first. An item Redis removed by its own TTL is counted
out when its key is next touched or swept.

Versions are unique per key without a shared counter: a write's version is the larger
of the previous one plus one and Redis's clock in microseconds, so a key deleted and
written again never repeats an ETag (unless Redis's clock steps back).

A refusal returns the current item: the store then runs the verb's Python change
function on it, which raises the same refusal with the same message as on the memory
store.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

from redis.exceptions import NoScriptError

# A Redis TTL is only a reclaim hint (the store's clock judges expiry): beyond this, none
# is set, as PEXPIRE refuses times past int64 milliseconds (ttl=9223372036854775807).
MAX_REDIS_TTL_MS = 100 * 365 * 24 * 3600 * 1000
# How many expired items a write reclaims on its way (as MemoryStore.SWEEP_STEP).
SWEEP_STEP = 8

# Shared by every script. ARGV[1] is now: '' for Redis's own clock (TIME), so one clock
# decides expiry for every memflask host on this Redis whatever the hosts' clocks say
# (Redis 7 replicates a script's effects, so reading TIME is safe); a test's clock gives
# Unix seconds instead. ARGV[2] is the item names' common start (`<prefix>{<shard>}item:`);
# KEYS[1] and KEYS[2] are the shard's stats hash and expiries set.
PRELUDE = """
local stats_name, expiries_name = KEYS[1], KEYS[2]
local now_text, item_prefix = ARGV[1], ARGV[2]
local now
if now_text == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
  now_text = string.format('%.17g', now)
else
  now = tonumber(now_text)
end

local function fmt(number) return string.format('%.0f', number) end

local function is_past(e) return e ~= '' and tonumber(e) <= now end

-- An item leaves: its hash, its expiry entry and its count.
local function remove(name, key)
  redis.call('DEL', name)
  redis.call('ZREM', expiries_name, key)
  redis.call('HINCRBY', stats_name, 'keys', -1)
end

local function reclaim(name, key)
  remove(name, key)
  redis.call('HINCRBY', stats_name, 'expired', 1)
end

-- When an item expiring at `e` with stale window `w` goes ('' never).
local function goes_at(e, w)
  if e == '' or w == '' then return e end
  return string.format('%.17g', tonumber(e) + tonumber(w))
end

local function lease_name_of(key) return string.sub(item_prefix, 1, -6) .. 'lease:' .. key end

-- The live item under `key`: value (false: none), last version (0: none), expiry, and
-- whether a stale item is held there instead (kept for lease readers, read as absent).
-- An item past its expiry (and stale window) is reclaimed; one Redis's TTL removed is
-- counted out.
local function load(key)
  local name = item_prefix .. key
  local fields = redis.call('HMGET', name, 'v', 'n', 'e', 'w', 's')
  local value, version, e = fields[1], tonumber(fields[2]) or 0, fields[3] or ''
  if value then
    if not fields[5] and not is_past(e) then return value, version, e, false end
    if not is_past(goes_at(e, fields[4] or '')) then return false, version, '', true end
    reclaim(name, key)
  elseif redis.call('ZSCORE', expiries_name, key) then
    reclaim(name, key)
  end
  return false, version, '', false
end

local function count_read(found)
  redis.call('HINCRBY', stats_name, found and 'hits' or 'misses', 1)
end

-- Reclaim up to `limit` items past their expiry, oldest expiry first.
local function sweep(limit)
  local due = redis.call('ZRANGEBYSCORE', expiries_name, '-inf', now_text, 'LIMIT', 0, limit)
  for _, key in ipairs(due) do
    local name = item_prefix .. key
    local fields = redis.call('HMGET', name, 'v', 'e', 'w')
    local goes = goes_at(fields[2] or '', fields[3] or '')
    if fields[1] and goes == '' then
      redis.call('ZREM', expiries_name, key)  -- rewritten since, never to expire
    elseif fields[1] and not is_past(goes) then
      redis.call('ZADD', expiries_name, goes, key)  -- rewritten since: when it really goes
    else
      reclaim(name, key)
    end
  end
end
"""

# Writes. KEYS[3] is the item's hash; ARGV[3] the key, ARGV[4] '1' to count a read,
# ARGV[5] and ARGV[6] the If-Match and If-None-Match tags ('' no header, else each tag
# between newlines), ARGV[7] the expiry ('' never, 'keep', Unix seconds, or 'ttl:' and
# seconds from now, by this script's clock), ARGV[8] the lease token it writes under ('':
# none), ARGV[9] its stale window in seconds ('' none), ARGV[10] the value, ARGV[11] on
# the verb's own arguments. A write answers its outcome ('stored', 'deleted', 'refused',
# or 'lease' when its lease is not current), value, version, expiry, '1' if an item was
# there, and the script's now (Unix seconds). Every write that changes the key ends its
# lease and its stale item.
WRITE_PRELUDE = f"""
local item_name, key, expiry = KEYS[3], ARGV[3], ARGV[7]
local lease_name = lease_name_of(key)
if string.sub(expiry, 1, 4) == 'ttl:' then
  expiry = string.format('%.17g', now + tonumber(string.sub(expiry, 5)))
end
local current, version, current_expiry, stale_held = load(key)
if ARGV[4] == '1' then count_read(current) end

local function matches(tags)
  return current and (string.find(tags, '\\n*\\n', 1, true)
    or string.find(tags, '\\n' .. fmt(version) .. '\\n', 1, true))
end

local function refuse()
  sweep({SWEEP_STEP})
  local present = current and '1' or '0'
  return {{'refused', current or '', fmt(version), current_expiry, present, now_text}}
end

-- The key changed: its lease ends (one it was written under is filled).
local function end_lease()
  redis.call('DEL', lease_name)
  if ARGV[8] ~= '' then redis.call('HINCRBY', stats_name, 'leaseFills', 1) end
end

-- Store `value`: a new version, its expiry, its count; or, already expired, nothing.
local function put(value, e)
  if e == 'keep' then e = current_expiry end
  local time = redis.call('TIME')
  local new_version = math.max(version + 1, tonumber(time[1]) * 1000000 + tonumber(time[2]))
  local reply = {{'stored', value, fmt(new_version), e, '1', now_text}}
  end_lease()
  if is_past(e) then
    if current or stale_held then remove(item_name, key) end
    sweep({SWEEP_STEP})
    return reply
  end
  redis.call('DEL', item_name)
  redis.call('HSET', item_name, 'v', value, 'n', fmt(new_version), 'e', e)
  if not current and not stale_held then redis.call('HINCRBY', stats_name, 'keys', 1) end
  local goes = e
  if e ~= '' and ARGV[9] ~= '' then
    redis.call('HSET', item_name, 'w', ARGV[9])
    goes = goes_at(e, ARGV[9])
  end
  if goes == '' then
    redis.call('ZREM', expiries_name, key)
  else
    redis.call('ZADD', expiries_name, goes, key)
    local ttl_ms = math.max(1, math.floor((tonumber(goes) - now) * 1000))
    if ttl_ms <= {MAX_REDIS_TTL_MS} then redis.call('PEXPIRE', item_name, fmt(ttl_ms)) end
  end
  sweep({SWEEP_STEP})
  return reply
end

if ARGV[8] ~= '' then
  local lease = redis.call('HMGET', lease_name, 't', 'u')
  if lease[1] ~= ARGV[8] or tonumber(lease[2]) <= now then
    return {{'lease', '', fmt(version), '', '0', now_text}}
  end
end
if ARGV[5] ~= '' and not matches(ARGV[5]) then return refuse() end
if ARGV[6] ~= '' and matches(ARGV[6]) then return refuse() end
"""

# The signed 64-bit integer in `text` ([+-]?[0-9]+) in canonical form, or nil.
CANONICAL_INTEGER = """
local function canonical_integer(text)
  local sign, digits = string.match(text, '^([+-]?)([0-9]+)$')
  if not digits then return nil end
  digits = string.gsub(digits, '^0+', '')
  if digits == '' then return '0' end
  if #digits > 19 then return nil end
  local limit = sign == '-' and '9223372036854775808' or '9223372036854775807'
  if #digits == 19 and digits > limit then return nil end
  return (sign == '-' and '-' or '') .. digits
end
"""

# Each change kind's own rules, run after the conditions held.
WRITE_BODIES = {
    "set": "return put(ARGV[10], expiry)",
    "add": "if current then return refuse() end\nreturn put(ARGV[10], expiry)",
    "replace": "if not current then return refuse() end\nreturn put(ARGV[10], expiry)",
    "checkandset": """
if current and current ~= ARGV[11] then return refuse() end
return put(ARGV[10], expiry)
""",
    "append": """
if not current then return put(ARGV[10], expiry == 'keep' and '' or expiry) end
local grown = current .. ARGV[10]
if #grown > tonumber(ARGV[11]) then return refuse() end
return put(grown, expiry)
""",
    "prepend": """
if not current then return put(ARGV[10], expiry == 'keep' and '' or expiry) end
local grown = ARGV[10] .. current
if #grown > tonumber(ARGV[11]) then return refuse() end
return put(grown, expiry)
""",
    # ARGV[10]: the value for an absent key; ARGV[11] on: the amounts to add, each in int64
    # (decrementing by -2**63 adds 2**63: two halves). Redis's HINCRBY does the 64-bit
    # arithmetic and refuses an overflow; it works on a scratch field of the item's hash.
    "count": CANONICAL_INTEGER
    + """
if not current then return put(ARGV[10], expiry == 'keep' and '' or expiry) end
local stored = canonical_integer(current)
if not stored then return refuse() end
redis.call('HSET', item_name, 't', stored)
for i = 11, #ARGV do
  local added = redis.pcall('HINCRBY', item_name, 't', ARGV[i])
  if type(added) == 'table' and added.err then
    redis.call('HDEL', item_name, 't')
    return refuse()
  end
end
return put(redis.call('HGET', item_name, 't'), expiry)
""",
    "delete": f"""
if current or stale_held then remove(item_name, key) end
end_lease()
sweep({SWEEP_STEP})
return {{'deleted', '', '0', '', '0', now_text}}
""",
    "touch": "if not current then return refuse() end\nreturn put(current, expiry)",
}

WRITE_SCRIPTS = {kind: PRELUDE + WRITE_PRELUDE + body for kind, body in WRITE_BODIES.items()}

# Reads of keys in one shard. ARGV[3] is the byte room ('' none): the hits' values come
# back only while the hits take at most that many bytes, each its key's and value's bytes
# plus 6 (`"key":"value",`, the least JSON of it), else their sizes instead, so a read
# that cannot fit an answer never sends its values. ARGV[4] is '1' to count each hit and
# miss; ARGV[5] on are the keys. Answers value, version, expiry per key ('' and version
# '0' for a miss, and for a key asked again: its first answers for it), its now, the
# bytes the hits take, then 'values', or 'sizes' with each hit's value slot holding that
# least size.
READ_SCRIPT = (
    PRELUDE
    + """
local room = tonumber(ARGV[3])
local counted = ARGV[4] == '1'
local found, sizes, seen, used = {}, {}, {}, 0
for i = 5, #ARGV do
  local value, version, e = load(ARGV[i])
  if counted then count_read(value) end
  if value and not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    local size = #ARGV[i] + #value + 6
    used = used + size
    sizes[#found + 1] = size
    found[#found + 1] = (room and used > room) and '' or value
    found[#found + 1] = fmt(version)
    found[#found + 1] = e
  else
    -- A miss; or a key asked again, answered once: its value is sent with its first
    -- (else one 1 MiB key asked 1,000 times had Redis build a 1 GB reply).
    found[#found + 1] = ''
    found[#found + 1] = '0'
    found[#found + 1] = ''
  end
end
found[#found + 1] = now_text
found[#found + 1] = used
if room and used > room then
  for slot, size in pairs(sizes) do found[slot] = tostring(size) end
  found[#found + 1] = 'sizes'
else
  found[#found + 1] = 'values'
end
return found
"""
)

# Removes the listed items of one shard (flush, /flush?prefix=), stale ones and leases
# too: KEYS[3] on are their hashes, ARGV[3] on their keys. Answers how many live items
# were removed; those past their expiry count as expired.
REMOVE_SCRIPT = (
    PRELUDE
    + """
local removed = 0
for i = 3, #ARGV do
  local value, _, _, stale_held = load(ARGV[i])
  if value or stale_held then remove(item_prefix .. ARGV[i], ARGV[i]) end
  if value then removed = removed + 1 end
  redis.call('DEL', lease_name_of(ARGV[i]))
end
return removed
"""
)

# Stats of one shard: keys held, hits, misses, expired (reclaimed plus past their expiry),
# leases granted, stale answers, lease fills.
STATS_SCRIPT = (
    PRELUDE
    + """
local counts = redis.call('HMGET', stats_name, 'keys', 'hits', 'misses', 'expired',
  'leases', 'staleAnswers', 'leaseFills')
local due = redis.call('ZCOUNT', expiries_name, '-inf', now_text)
local keys = tonumber(counts[1]) or 0
return {keys - due, tonumber(counts[2]) or 0, tonumber(counts[3]) or 0,
        (tonumber(counts[4]) or 0) + due, tonumber(counts[5]) or 0,
        tonumber(counts[6]) or 0, tonumber(counts[7]) or 0}
"""
)


class ShardRead(NamedTuple):
    """One call of the read script: keys of one shard, the byte room of their values
    (None: no bound; see get_many_within), and whether it counts hits and misses."""

    shard: str
    keys: list[str]
    room: Optional[int] = None
    counted: bool = True


class Scripts:
    """The Lua scripts by name, loaded once and then called by their SHA."""

    def __init__(self, client: Any, sources: dict[str, str]):
        self.client = client
        self.sources = sources
        self.shas: dict[str, str] = {}

    def sha(self, name: str) -> str:
        sha = self.shas.get(name)
        if sha is None:
            sha = self.shas[name] = self.client.script_load(self.sources[name])
        return sha

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)
        except NoScriptError:
            # The script did not run (Redis restarted, or a failover): load it and call
            # again, which sends the write once.
            self.shas.pop(name, None)
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)


def script_tags(tags: Optional[frozenset[str]]) -> str:
    """Entity tags as a script reads them: '' for no header, else each between newlines."""
    return "" if tags is None else "\n" + "".join(f"{tag}\n" for tag in tags)


def script_amounts(amount: int) -> list[int]:
    """`amount` as HINCRBY increments, each within int64 (2**63 is two halves)."""
    return [amount] if amount < 2**63 else [amount // 2, amount - amount // 2]
