"""A plugin verb's write on Redis: its Python change function, run under WATCH/MULTI and
retried when another writer changed the key in between (the default verbs each run as one
Lua script instead: memflask/store/redis/scripts.py). No write is ever sent twice: one
whose answer did not come raises WriteOutcomeUnknown."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from redis.exceptions import WatchError

from ..base import DELETE, ChangeFunction, Item, StoreUnavailable
from .connection import UNREACHABLE, abandon, guarded, outcome_unknown, redis_ttl_ms
from .layout import FIELDS, microseconds, on_host_clock


class WatchedUpdates:
    """A RedisStore's `update`. The store sets `client` and `clock`, and names keys and reads
    items as its ItemLayout does."""

    client: Any
    clock: Callable[[], float]
    _server_time: Callable[[], Optional[float]]
    _shard: Callable[[str], str]
    _shard_keys: Callable[[str], list[str]]
    _item: Callable[[Sequence[Any], float], Optional[Item]]
    _client_for: Callable[[str], Any]

    @guarded
    def update(self, key: str, change: ChangeFunction, *, read: bool = False) -> Optional[Item]:
        """Run a change function under WATCH/MULTI (for verbs without a description)."""
        shard = self._shard(key)
        name = f"{shard}item:{key}"
        stats_name, expiries_name = self._shard_keys(shard)
        counted = not read
        exec_sent = False
        with self._client_for(name).pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    # Run at once while watching: Redis's TIME stamps the version, as in
                    # the scripts; the deciding clock (Redis's or a test's) judges expiry.
                    redis_time = microseconds(pipe.time())
                    server_now = self._server_time()
                    now = redis_time / 1_000_000 if server_now is None else server_now
                    fields = pipe.hmget(name, FIELDS)
                    # Held: a hash with a value, or one Redis's TTL removed (still counted).
                    held = fields[0] is not None or pipe.zscore(expiries_name, key) is not None
                    current = self._item(fields, now)
                    if not counted:  # the first read counts, even if `change` refuses
                        self.client.hincrby(stats_name, "hits" if current else "misses", 1)
                        counted = True
                    new = change(current, now)
                    if new is None:
                        pipe.unwatch()
                        break
                    pipe.multi()
                    if held and current is None:
                        pipe.hincrby(stats_name, "expired", 1)
                    pipe.delete(name, f"{shard}lease:{key}")  # a write ends its lease
                    pipe.zrem(expiries_name, key)
                    kept = new is not DELETE and (new.expires_at is None or new.expires_at > now)
                    if kept != held:
                        pipe.hincrby(stats_name, "keys", 1 if kept else -1)
                    if new is not DELETE:
                        # Unique per key without a counter, by Redis's clock as the scripts'
                        # versions (see memflask/store/redis/scripts.py), never this host's.
                        version = int(fields[1] or 0)
                        new.version = max(version + 1, redis_time)
                    if kept:
                        expires = "" if new.expires_at is None else repr(new.expires_at)
                        pipe.hset(name, mapping={"v": new.value, "n": new.version, "e": expires})
                        if new.expires_at is not None:
                            pipe.zadd(expiries_name, {key: new.expires_at})
                        ttl_ms = redis_ttl_ms(new.expires_at, now)
                        if ttl_ms is not None:
                            pipe.pexpire(name, ttl_ms)
                    exec_sent = True
                    pipe.execute()
                    break
                except WatchError as error:
                    if isinstance(error.__context__, UNREACHABLE):
                        # redis-py reports a lost connection while watching as a WatchError.
                        abandon(pipe)
                        if exec_sent:  # Redis may still run that EXEC: never send it again
                            raise outcome_unknown(error.__context__) from error
                        raise StoreUnavailable(f"redis: {error.__context__}") from error
                    continue  # another writer changed the key: read it again
                except UNREACHABLE as error:
                    abandon(pipe)
                    if exec_sent:
                        raise outcome_unknown(error) from error
                    raise
        # Told on this host's clock, as a script's answer and a read are.
        host_now = self.clock()
        if new is None:
            return self._on_host(current, now, host_now)
        return None if new is DELETE else self._on_host(new, now, host_now)

    @staticmethod
    def _on_host(item: Optional[Item], server_now: float, host_now: float) -> Optional[Item]:
        """`item` with its expiry told on this host's clock (see _on_host_clock)."""
        if item is None or item.expires_at is None:
            return item
        told = Item(item.value, on_host_clock(item.expires_at, server_now, host_now))
        told.version = item.version
        return told
