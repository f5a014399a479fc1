"""A MemoryStore's leases and stale items, as the Store interface offers them: the lease
read, invalidation, and writes under a lease or with a stale window (the table itself is
memflask/store/leases.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Optional

from .base import LEASE_NOT_HELD, Change, ChangeFunction, Item, LeaseNotHeld, LeaseRead
from .leases import LeaseTable


class MemoryLeases:
    """A MemoryStore's lease operations. The store holds the attributes below, and gives
    `_now`, `_live`, `_forget` and `_make_room` (called with the lock held) and `update`."""

    _lock: threading.Lock
    _items: OrderedDict[str, Item]
    _leases: LeaseTable
    _bytes: int
    _hits: int
    _misses: int
    _changes: int
    max_bytes: int
    _now: Callable[[], float]
    _live: Callable[[str, float], Optional[Item]]
    _forget: Callable[[str, Item], None]
    _make_room: Callable[[float], None]
    _touch: Callable[[str], None]
    update: Callable[..., Optional[Item]]

    def get_leased(
        self, key: str, lease_seconds: int, recache_seconds: Optional[int] = None
    ) -> LeaseRead:
        with self._lock:
            now = self._now()
            leases = self._leases
            item = self._live(key, now)
            if item is not None:
                self._hits += 1
                self._touch(key)
                if (
                    recache_seconds is None
                    or item - now >= recache_seconds  # NEVER too: it never expires
                    or leases.lease_left(key, now) is not None
                ):
                    return LeaseRead(item)
                return LeaseRead(item, token=self._grant(key, lease_seconds, now))
            self._misses += 1
            entry, freed = leases.stale(key, now)
            self._bytes -= freed
            lease_left = leases.lease_left(key, now)
            if entry is not None:
                leases.stale_answers += 1
                stale_for = now - entry.fresh_until
                token = None if lease_left is not None else self._grant(key, lease_seconds, now)
                return LeaseRead(entry.stale, stale_for=stale_for, token=token)
            if lease_left is not None:
                return LeaseRead(lease_left=lease_left)
            return LeaseRead(token=self._grant(key, lease_seconds, now))

    def _grant(self, key: str, seconds: int, now: float) -> str:
        token, added = self._leases.grant(key, seconds, now)
        self._bytes += added
        if self.max_bytes and self._bytes > self.max_bytes:
            self._make_room(now)
        return token

    def invalidate(self, key: str) -> bool:
        with self._lock:
            now = self._now()
            item = self._live(key, now)
            if item is None:
                return False
            self._forget(key, self._items.pop(key))
            self._changes += 1
            self._bytes += self._leases.invalidated(key, item, now)
            if self.max_bytes and self._bytes > self.max_bytes:
                self._make_room(now)
            return True

    def write(
        self,
        key: str,
        change: ChangeFunction,
        server_change: Any = None,
        *,
        read: bool = False,
        lease: str = "",
        stale: Optional[int] = None,
    ) -> Optional[Item]:
        if not lease and stale is None:
            return self.update(key, change, read=read)
        leases = self._leases

        def leased_change(current: Optional[Item], now: float) -> Change:
            if lease and not leases.holds(key, lease, now):
                raise LeaseNotHeld(LEASE_NOT_HELD)
            new = change(current, now)
            if isinstance(new, Item):  # update() hands it to written() once stored
                leases.expect(new, stale, bool(lease))
            return new

        return self.update(key, leased_change, read=read)
