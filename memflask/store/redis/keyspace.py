"""A namespace's keys as a whole on Redis: flush, prefix deletion, /keys scans with their
sealed cursors, and the namespace's counters (stats)."""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from typing import Any, Callable, Optional

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from ..base import Item, StoreStats
from ..scans import MAX_CURSOR_CHARS, CursorSeal, UnknownCursor
from .connection import guarded
from .layout import FIELDS, SHARDS
from .scripts import Scripts

SCAN_BATCH = 1000
# The namespace's key that holds the secret /keys cursors are sealed with (memflask/store/scans.py):
# one for every memflask host on this Redis, so a scan may go on through any of them.
CURSOR_SECRET_NAME = "cursor-secret"
# Characters that mean something in a SCAN MATCH pattern, escaped in a key prefix.
GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")


def glob_escape(text: str) -> str:
    return GLOB_SPECIAL.sub(r"\\\g<0>", text)


class Keyspace:
    """A RedisStore's operations on many keys at once. The store sets the attributes below,
    reads many shards at once with `_call_many`, and names keys as its ItemLayout does."""

    client: Any
    prefix: str
    scripts: Scripts
    _seal: Optional[CursorSeal]
    _call_many: Callable[[str, list[tuple[list[str], list[Any]]]], list[Any]]
    _shard: Callable[[str], str]
    _key_of: Callable[[bytes], str]
    _shard_keys: Callable[[str], list[str]]
    _item: Callable[..., Optional[Item]]
    _now_argument: Callable[[], tuple[str, float]]
    _server_now: Callable[[Any], float]

    @guarded
    def flush(self) -> None:
        """Remove memflask's keys only (other users of the Redis keep theirs)."""
        self._remove_matching(self._pattern(""))

    @guarded
    def delete_prefix(self, prefix: str) -> int:
        return self._remove_matching(self._pattern(prefix))

    def _remove_matching(self, pattern: str) -> int:
        """Remove the items whose names match, a batch per shard; return how many were live."""
        removed = 0
        batch: dict[str, list[str]] = defaultdict(list)
        for number, name in enumerate(self.client.scan_iter(match=pattern, count=SCAN_BATCH)):
            key = self._key_of(name)
            batch[self._shard(key)].append(key)
            if number % SCAN_BATCH == SCAN_BATCH - 1:
                removed += self._remove(batch)
                batch.clear()
        return removed + self._remove(batch)

    def _remove(self, by_shard: dict[str, list[str]]) -> int:
        now = self._now_argument()[0]
        removed = 0
        for shard, keys in by_shard.items():
            names = [f"{shard}item:{key}" for key in keys]
            removed += self.scripts.call(
                "remove", [*self._shard_keys(shard), *names], [now, f"{shard}item:", *keys]
            )
        return removed

    @guarded
    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        # Redis starts and ends a scan with cursor 0; memflask's cursors say it empty.
        position = self._open_cursor(prefix, cursor) if cursor else ""
        if isinstance(self.client, RedisCluster):
            live, position = self._scan_cluster(prefix, position, limit)
        else:
            if position and not (position.isdigit() and len(position) <= 20):
                raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again")
            next_cursor, live = self._scan_node(self.client, prefix, int(position or 0), limit)
            position = "" if next_cursor == 0 else str(next_cursor)
        return live, self._cursor_seal().seal(prefix, position) if position else ""

    def _cursor_seal(self, fresh: bool = False) -> CursorSeal:
        """The namespace's cursor seal: its secret made by the first host to scan (SET NX)."""
        if self._seal is None or fresh:
            name = f"{self.prefix}{CURSOR_SECRET_NAME}"
            self.client.set(name, secrets.token_hex(32), nx=True)
            secret = self.client.get(name)
            if secret is None:  # emptied meanwhile: this host's own until the next look
                secret = secrets.token_bytes(32)
            self._seal = CursorSeal(secret)
        return self._seal

    def _open_cursor(self, prefix: str, cursor: str) -> str:
        try:
            return self._cursor_seal().open(prefix, cursor)
        except UnknownCursor:
            if len(cursor) > MAX_CURSOR_CHARS:
                raise
            # Redis may have been emptied, and another host made a new secret: look again.
            return self._cursor_seal(fresh=True).open(prefix, cursor)

    @guarded
    def scan_size(self) -> int:
        """Every key of the database: SCAN examines them all, memflask's or not."""
        return int(self.client.dbsize())

    def _scan_cluster(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        """A cluster's scan: each primary in turn, the position `<primary>.<its cursor>`.

        A key present for the whole scan is listed at least once while the cluster's
        primaries stay the same; after a failover or a reshard, start again.
        """
        primaries = sorted(self.client.get_primaries(), key=lambda node: node.name)
        index, position = 0, 0
        if cursor:
            index_text, _, position_text = cursor.partition(".")
            if not (
                cursor.isascii()
                and index_text.isdigit()
                and position_text.isdigit()
                and int(index_text) < len(primaries)
            ):
                raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again")
            index, position = int(index_text), int(position_text)
        # A primary scanned to its end goes on to the next while the page has room, so a
        # small namespace lists in one call, as on one Redis; at most one SCAN a primary.
        live: list[str] = []
        while index < len(primaries) and len(live) < limit:
            node_client = self.client.get_redis_connection(primaries[index])
            position, found = self._scan_node(node_client, prefix, position, limit - len(live))
            live.extend(found)
            if position != 0:
                break
            index += 1
        return live, "" if index == len(primaries) else f"{index}.{position}"

    def _scan_node(self, client: Any, prefix: str, cursor: int, limit: int) -> tuple[int, list]:
        """One SCAN step on one Redis: the next cursor, and the live keys it met."""
        try:
            next_cursor, names = client.scan(cursor, match=self._pattern(prefix), count=limit)
        except ResponseError as error:  # a number Redis never gave as a cursor
            raise UnknownCursor(f"unknown cursor {cursor}: {error}; start again") from None
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, FIELDS)
        now = self._server_now(client)  # Redis's clock judges expiry, as in the scripts
        live = [
            self._key_of(name)
            for name, fields in zip(names, pipe.execute())
            if self._item(fields, now) is not None
        ]
        return next_cursor, live

    def _pattern(self, prefix: str) -> str:
        """The SCAN pattern of this namespace's items whose key starts with `prefix`."""
        return f"{glob_escape(self.prefix)}{{*}}item:{glob_escape(prefix)}*"

    @guarded
    def stats(self) -> StoreStats:
        """This namespace's counters, kept by the scripts (O(shards), no SCAN), and what
        Redis itself knows of memory and evictions."""
        now = self._now_argument()[0]
        calls: list[tuple[list[str], list[Any]]] = [
            (self._shard_keys(f"{self.prefix}{{{shard}}}"), [now, ""]) for shard in range(SHARDS)
        ]
        for _ in range(2):  # once more after NOSCRIPT (a read: simply asked again)
            answers = self._call_many("stats", calls)
            if not any(isinstance(answer, NoScriptError) for answer in answers):
                break
            self.scripts.shas.pop("stats", None)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        keys, hits, misses, expired, leases, stale_answers, lease_fills = (
            sum(column) for column in zip(*answers)
        )
        info = self._info()
        return StoreStats(
            keyCount=max(0, keys),
            maxSize=0,
            bytes=info.get("used_memory", 0),
            maxBytes=info.get("maxmemory", 0),
            hits=hits,
            misses=misses,
            evictions=info.get("evicted_keys", 0),
            expired=expired,
            leases=leases,
            staleAnswers=stale_answers,
            leaseFills=lease_fills,
        )

    def _info(self) -> dict[str, int]:
        """Redis's memory and eviction figures (summed over a cluster's primaries)."""
        fields = ("used_memory", "maxmemory", "evicted_keys")
        if not isinstance(self.client, RedisCluster):
            info = self.client.info()
            return {field: info.get(field, 0) for field in fields}
        per_node = self.client.info(target_nodes=RedisCluster.PRIMARIES)
        return {field: sum(info.get(field, 0) for info in per_node.values()) for field in fields}
