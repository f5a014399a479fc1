"""The Redis store backend: every memflask process on one Redis sees one cache.

Each item is a hash under the namespace prefix (`<prefix>item:<key>`) holding its value
(`v`), version (`n`) and absolute expiry (`e`, empty for never). Expiry is judged by the
store's clock, as in the memory store, and the key also gets a Redis TTL so Redis
reclaims it. Read-modify-write verbs run the same change functions as the memory store
inside WATCH/MULTI: the write applies only if the key did not change since it was read,
and is retried otherwise, so no update is lost between processes. A write whose EXEC was
sent but not answered is never retried (Redis may still run it): it raises
WriteOutcomeUnknown instead, answered 503 saying the outcome is unknown.

Every wait is bounded, and calls fail fast for a while after Redis failed to answer
(memflask/redis_connection.py).

SIZE and MAX_BYTES are not enforced here: Redis's own `maxmemory` with the
`allkeys-lru` policy is the LRU (see README, "Backends").
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Optional

from redis.exceptions import ResponseError, WatchError

from .redis_connection import (
    UNREACHABLE,
    Breaker,
    abandon,
    connect,
    guarded,
    outcome_unknown,
    redis_ttl_ms,
)
from .store import (
    DELETE,
    ChangeFunction,
    Clock,
    Item,
    Store,
    StoreStats,
    StoreUnavailable,
    UnknownCursor,
    utf8_len,
)

FIELDS = ("v", "n", "e")
SCAN_BATCH = 1000
# Characters that mean something in a SCAN MATCH pattern, escaped in a key prefix.
GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")


_translating = guarded  # every method that calls Redis: bounded, through the breaker


class RedisStore(Store):
    """The Store interface on a Redis server (redis-py)."""

    def __init__(
        self,
        url: str,
        prefix: str = "memflask:",
        timeout: float = 1.0,
        clock: Optional[Callable[[], float]] = None,
    ):
        self.clock = clock if clock is not None else Clock()
        self.prefix = prefix
        self.breaker = Breaker(pause=timeout)
        self.client = connect(url, timeout)
        self._version_key = f"{prefix}meta:version"
        self._stats_key = f"{prefix}meta:stats"

    def _key(self, key: str) -> str:
        return f"{self.prefix}item:{key}"

    def _item(self, fields: list[Optional[bytes]], now: float) -> Optional[Item]:
        """The live Item in a hash's (v, n, e) fields, or None (absent or expired)."""
        value, version, expires = fields
        if value is None or version is None:
            return None
        expires_at = float(expires) if expires else None
        if expires_at is not None and expires_at <= now:
            return None
        item = Item(value.decode("utf-8"), expires_at)
        item.version = int(version)
        return item

    def _count(self, hits: int, misses: int) -> None:
        hits, misses = int(hits), int(misses)
        pipe = self.client.pipeline(transaction=False)
        if hits:
            pipe.hincrby(self._stats_key, "hits", hits)
        if misses:
            pipe.hincrby(self._stats_key, "misses", misses)
        pipe.execute()

    # -- reads ---------------------------------------------------------------------------

    @_translating
    def get(self, key: str) -> Optional[Item]:
        item = self._item(self.client.hmget(self._key(key), FIELDS), self.clock())
        self._count(item is not None, item is None)
        return item

    @_translating
    def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        keys = list(keys)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._key(key), FIELDS)
        now = self.clock()
        found = {}
        for key, fields in zip(keys, pipe.execute()):
            item = self._item(fields, now)
            if item is not None:
                found[key] = item
        self._count(len(found), len(keys) - len(found))
        return found

    @_translating
    def peek(self, key: str) -> Optional[Item]:
        return self._item(self.client.hmget(self._key(key), FIELDS), self.clock())

    # -- writes --------------------------------------------------------------------------

    @_translating
    def update(self, key: str, change: ChangeFunction, *, read: bool = False) -> Optional[Item]:
        name = self._key(key)
        counted = not read
        exec_sent = False
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    now = self.clock()
                    current = self._item(pipe.hmget(name, FIELDS), now)
                    if not counted:  # the first read counts, even if `change` refuses
                        self._count(current is not None, current is None)
                        counted = True
                    new = change(current, now)
                    if new is None:
                        pipe.unwatch()
                        break
                    if new is not DELETE:
                        new.version = self.client.incr(self._version_key)
                        new.size = utf8_len(key) + utf8_len(new.value)
                    pipe.multi()
                    pipe.delete(name)
                    if new is not DELETE and (new.expires_at is None or new.expires_at > now):
                        expires = "" if new.expires_at is None else repr(new.expires_at)
                        pipe.hset(name, mapping={"v": new.value, "n": new.version, "e": expires})
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
        if new is None:
            return current
        return None if new is DELETE else new

    @_translating
    def flush(self) -> None:
        """Remove memflask's keys only (other users of the Redis keep theirs)."""
        batch = []
        for name in self.client.scan_iter(match=f"{self.prefix}item:*", count=SCAN_BATCH):
            batch.append(name)
            if len(batch) >= SCAN_BATCH:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    @_translating
    def stats(self) -> StoreStats:
        """Counts of this namespace's live keys, and what Redis itself knows."""
        names = list(self.client.scan_iter(match=f"{self.prefix}item:*", count=SCAN_BATCH))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, "e")
        now = self.clock()
        live = sum(1 for e in pipe.execute() if e is not None and (not e or float(e) > now))
        counters = self.client.hgetall(self._stats_key)
        info = self.client.info()
        return StoreStats(
            keyCount=live,
            maxSize=0,
            bytes=info.get("used_memory", 0),
            maxBytes=info.get("maxmemory", 0),
            hits=int(counters.get(b"hits", 0)),
            misses=int(counters.get(b"misses", 0)),
            evictions=info.get("evicted_keys", 0),
            expired=info.get("expired_keys", 0),
        )

    @_translating
    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for name in self.client.scan_iter(match=self._pattern(prefix), count=SCAN_BATCH):
            batch.append(name)
            if len(batch) >= SCAN_BATCH:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted

    @_translating
    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        if not (cursor.isascii() and cursor.isdigit()):
            raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again at 0")
        try:
            next_cursor, names = self.client.scan(
                int(cursor), match=self._pattern(prefix), count=limit
            )
        except ResponseError as error:  # a number Redis never gave as a cursor
            raise UnknownCursor(f"unknown cursor {cursor[:40]!r}: {error}") from None
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, FIELDS)
        now = self.clock()
        start = len(self._key(""))
        live = [
            name[start:].decode("utf-8")
            for name, fields in zip(names, pipe.execute())
            if self._item(fields, now) is not None
        ]
        return live, str(next_cursor)

    def _pattern(self, prefix: str) -> str:
        """The SCAN pattern of this namespace's items whose key starts with `prefix`."""
        return self._key(GLOB_SPECIAL.sub(r"\\\g<0>", prefix)) + "*"

    def close(self) -> None:
        self.client.close()
