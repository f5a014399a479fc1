"""How a namespace's items are laid out in Redis: the names of their keys, their shards, an
item read from its hash's fields, and whose clock judges expiry (the scripts' side of
the layout is described in memflask/store/redis/scripts.py)."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Optional, Sequence

from ..base import Item

# An item's hash fields: its value, its version (0: none), its expiry (Unix seconds), and
# when it was invalidated (a stale item: read as absent).
FIELDS = ("v", "n", "e", "s")
# Items are spread over this many shards, each one hash tag (one Cluster slot) holding
# its items, its counters and its expiry index, so a script touches one slot only.
SHARDS = 256


class ItemLayout:
    """A RedisStore's keys and items: the store sets `prefix`, `clock` and `_server_time`."""

    prefix: str
    clock: Callable[[], float]
    _server_time: Callable[[], Optional[float]]

    def _shard(self, key: str) -> str:
        """The hash-tagged start of the names of `key`'s shard: `<prefix>{<shard>}`."""
        shard = zlib.crc32(key.encode("utf-8", "surrogatepass")) % SHARDS
        return f"{self.prefix}{{{shard}}}"

    def _key(self, key: str) -> str:
        return f"{self._shard(key)}item:{key}"

    def _key_of(self, name: bytes) -> str:
        """The memflask key an item's hash name holds (`<prefix>{<shard>}item:<key>`)."""
        rest = name.decode("utf-8")[len(self.prefix) :]
        return rest[rest.index("}item:") + len("}item:") :]

    def _shard_keys(self, shard: str) -> list[str]:
        """KEYS[1] and KEYS[2] of every script: the shard's stats hash and expiry index."""
        return [f"{shard}stats", f"{shard}expiries"]

    def _item(
        self, fields: Sequence[Any], now: float, host_now: Optional[float] = None
    ) -> Optional[Item]:
        """The live Item in a hash's (v, n, e) fields, or None (absent or expired).

        `now` is the deciding clock's (Redis's); given this host's `host_now`, the Item's
        expiry is told on this host's clock (the same seconds left), as `store.clock()`
        reads it: /ttl then answers the same on every host.
        """
        value, version, expires = fields[:3]
        if not version or version in (b"0", "0") or (len(fields) > 3 and fields[3]):
            return None
        expires_at = float(expires) if expires else None
        if expires_at is not None:
            if expires_at <= now:
                return None
            if host_now is not None:
                expires_at = on_host_clock(expires_at, now, host_now)
        item = Item(text_of(value), expires_at)
        item.version = int(version)
        return item

    def _now_argument(self) -> tuple[str, float]:
        """The scripts' ARGV[1] ('' : Redis's own TIME) and this host's clock now."""
        server_now = self._server_time()
        return ("" if server_now is None else repr(server_now)), self.clock()

    def _server_now(self, client: Any) -> float:
        """Now on the deciding clock: Redis's TIME (a round trip), or a test clock's."""
        server_now = self._server_time()
        if server_now is not None:
            return server_now
        return microseconds(client.time()) / 1_000_000


def text_of(value: Optional[bytes]) -> str:
    return "" if value is None else value.decode("utf-8")


def microseconds(redis_time: tuple[int, int]) -> int:
    """Redis's TIME answer (seconds, microseconds) in microseconds."""
    seconds, microseconds = redis_time
    return int(seconds) * 1_000_000 + int(microseconds)


def on_host_clock(expires_at: float, server_now: float, host_now: float) -> float:
    """An expiry on the deciding clock (Redis's) told on this host's clock: the same
    seconds left, so every answer (a read, a write's, a plugin verb's) agrees on every
    host whatever its clock says, and `store.clock()` reads it."""
    if host_now == server_now:
        return expires_at
    return expires_at - server_now + host_now
