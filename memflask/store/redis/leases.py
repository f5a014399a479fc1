"""The Redis store's leases and stale items: the lease read and the invalidation, each one
atomic script (the writes under a lease are the write scripts', memflask/store/redis/
scripts.py, which describes the layout: an item's `w` and `s` fields, its lease's hash)."""

from __future__ import annotations

from typing import Callable, Optional

from ..base import Item, LeaseRead
from ..leases import new_token
from .connection import UNREACHABLE, guarded, outcome_unknown
from .layout import on_host_clock, text_of
from .scripts import PRELUDE, Scripts

# A lease reader's read of one key (Store.get_leased): KEYS[3] is its item's hash, KEYS[4]
# its lease's; ARGV[3] the key, ARGV[4] the lease's seconds, ARGV[5] the recache seconds
# ('' none), ARGV[6] the token to give if a lease is given. Answers the state ('fresh',
# 'stale', 'miss'), value, version, expiry (for a stale item: when it went stale), the
# token given ('' none), the seconds left of another's lease ('' none), and its now.
LEASE_READ_SCRIPT = (
    PRELUDE
    + """
local item_name, lease_name, key = KEYS[3], KEYS[4], ARGV[3]
local fields = redis.call('HMGET', item_name, 'v', 'n', 'e', 'w', 's')
local value, version, e = fields[1], fields[2] or '0', fields[3] or ''
local state = 'miss'
if value then
  if not fields[5] and not is_past(e) then
    state = 'fresh'
  elseif not is_past(goes_at(e, fields[4] or '')) then
    state = 'stale'
  else
    reclaim(item_name, key)
  end
elseif redis.call('ZSCORE', expiries_name, key) then
  reclaim(item_name, key)
end
local lease = redis.call('HMGET', lease_name, 't', 'u')
local left = ''
if lease[1] and tonumber(lease[2]) > now then
  left = string.format('%.17g', tonumber(lease[2]) - now)
end
local function grant()
  local seconds = tonumber(ARGV[4])
  redis.call('HSET', lease_name, 't', ARGV[6], 'u', string.format('%.17g', now + seconds))
  redis.call('PEXPIRE', lease_name, seconds * 1000)
  redis.call('HINCRBY', stats_name, 'leases', 1)
  return ARGV[6]
end
local given = ''
count_read(state == 'fresh')
if state == 'fresh' then
  if ARGV[5] ~= '' and e ~= '' and tonumber(e) - now < tonumber(ARGV[5]) and left == '' then
    given = grant()
  end
  return {'fresh', value, version, e, given, '', now_text}
end
if left == '' then given = grant() end
if state == 'stale' then
  redis.call('HINCRBY', stats_name, 'staleAnswers', 1)
  return {'stale', value, version, fields[5] or e, given, '', now_text}
end
return {'miss', '', '0', '', given, left, now_text}
"""
)

# Makes the live item of KEYS[3] (key ARGV[3]) stale, and ends its lease (KEYS[4]);
# answers 1, or 0 if there is none.
INVALIDATE_SCRIPT = (
    PRELUDE
    + """
local value = load(ARGV[3])
if not value then return 0 end
redis.call('HSET', KEYS[3], 's', now_text)
redis.call('DEL', KEYS[4])
return 1
"""
)


class RedisLeases:
    """A RedisStore's lease operations: the store sets `scripts` and names keys as its
    ItemLayout does."""

    scripts: Scripts
    _shard: Callable[[str], str]
    _shard_keys: Callable[[str], list[str]]
    _now_argument: Callable[[], tuple[str, float]]

    @guarded
    def get_leased(
        self, key: str, lease_seconds: int, recache_seconds: Optional[int] = None
    ) -> LeaseRead:
        shard = self._shard(key)
        now_argument, host_now = self._now_argument()
        state, value, version, expires, token, left, server_now = self.scripts.call(
            "lease_read",
            [*self._shard_keys(shard), f"{shard}item:{key}", f"{shard}lease:{key}"],
            [
                now_argument,
                f"{shard}item:",
                key,
                lease_seconds,
                "" if recache_seconds is None else recache_seconds,
                new_token(),
            ],
        )
        read = LeaseRead(
            token=token.decode() if token else None, lease_left=float(left) if left else None
        )
        if state == b"miss":
            return read
        if state == b"fresh":
            expires_at = float(expires) if expires else None
            if expires_at is not None:
                expires_at = on_host_clock(expires_at, float(server_now), host_now)
            item = Item(text_of(value), expires_at)
        else:  # stale: `expires` is when it went stale
            item = Item(text_of(value))
            read = read._replace(stale_for=float(server_now) - float(expires))
        item.version = int(version)
        return read._replace(item=item)

    @guarded
    def invalidate(self, key: str) -> bool:
        shard = self._shard(key)
        keys = [*self._shard_keys(shard), f"{shard}item:{key}", f"{shard}lease:{key}"]
        args = [self._now_argument()[0], f"{shard}item:", key]
        try:
            return bool(self.scripts.call("invalidate", keys, args))
        except UNREACHABLE as error:
            raise outcome_unknown(error) from error
