"""The in-memory LRU store: the default backend."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from sys import getsizeof
from typing import Any, Callable, Iterable, Mapping, Optional

from .base import (
    _ASCII_STR_BYTES,
    DELETE,
    EXPIRING_ITEM_BYTES,
    EXPIRY_SECOND_BYTES,
    ITEM_BYTES,
    NEVER,
    WALL_STEP_SECONDS,
    ChangeFunction,
    Clock,
    Item,
    ItemTooLarge,
    Store,
    TtlItem,
    str_bytes,
)
from .eviction import LRU, POLICY_ITEM_BYTES, S3FIFO, S3Fifo
from .expiry_index import ExpiryIndex
from .leases import LeaseTable
from .memory_clock import MemoryClock
from .memory_keyspace import MemoryKeyspace
from .memory_leases import MemoryLeases
from .scans import CursorSeal, ScanSnapshots


class MemoryStore(MemoryLeases, MemoryKeyspace, MemoryClock, Store):
    """A thread-safe store with per-item expiry, bounded by key count and by memory.

    One lock guards everything. Items sit in an OrderedDict: in recency order (most recent
    last) under the `lru` eviction policy; under `s3fifo` the policy keeps its queues in
    that order and beside it (memflask.store.eviction). MAX_BYTES bounds the memory they
    take: each item counts its key and value str objects and its measured overhead
    (ITEM_BYTES, EXPIRING_ITEM_BYTES), and each whole second in which live items expire
    counts its bucket in the expiry index (memflask.store.expiry_index), which reclaims
    expired items, soonest first, before any live one is evicted, and in small steps on
    every write. The hot paths are written out inline: each method call saved is a
    measurable share of an operation (see bench/).
    """

    # How many expired items a single write reclaims on its way (Redis-like active expiry).
    SWEEP_STEP = 8

    def __init__(
        self,
        max_keys: int = 0,
        max_bytes: int = 0,
        clock: Optional[Callable[[], float]] = None,
        eviction: str = LRU,
    ):
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.clock = clock if clock is not None else Clock()
        # None for the real time: the hot paths then call time.time() directly (looked up
        # at each call, so freezegun still freezes it), saving a call through Clock.
        self._injected_clock = clock
        # The injected clock's monotonic time (None: time.monotonic, looked up at each call);
        # an injected clock without one is its own: it never steps.
        self._injected_monotonic = (
            None if clock is None else getattr(clock, "monotonic", None) or clock
        )
        # Wall minus monotonic time when TtlItems were last in step with the wall clock;
        # None while none was stored (the clock reads then skip the monotonic clock).
        self._wall_offset: Optional[float] = None
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Item] = OrderedDict()
        # /keys: each scan copies the key list once, at its start (see scan()).
        self._scans = ScanSnapshots()
        self._cursor_seal = CursorSeal()  # a secret of this process: cursors end with it
        self._versions = itertools.count(1)
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expired = 0
        # Bumped by every change to the items (see `changes`).
        self._changes = 0
        self.eviction = eviction
        # None under lru, whose order is the items' own: a hit moves its key to the end.
        self._policy = S3Fifo(self._items, max_keys, max_bytes) if eviction == S3FIFO else None
        self._touch = self._items.move_to_end if self._policy is None else self._policy.touch
        self._policy_bytes = 0 if self._policy is None else POLICY_ITEM_BYTES  # an item's
        self._index = ExpiryIndex(self._items, self._versions, self._policy)
        self._leases = LeaseTable()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MemoryStore:
        return cls(
            max_keys=settings["SIZE"],
            max_bytes=settings["MAX_BYTES"],
            clock=settings["CLOCK"],
            eviction=settings["EVICTION"],
        )

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> Optional[Item]:
        # acquire/try/release rather than `with`: half the cost, on the hottest path.
        self._lock.acquire()
        try:
            item = self._items.get(key)
            if item is not None:
                # The clock is read only for an item that expires (an Item is its expiry).
                if item != NEVER:
                    if item.__class__ is TtlItem:
                        # By the monotonic clock, whatever the wall clock did: no step to
                        # look for on the hottest path (see _follow_wall_steps).
                        monotonic = self._injected_monotonic
                        now = self._wall_offset + (
                            time.monotonic() if monotonic is None else monotonic()
                        )
                    else:
                        now = (
                            time.time() if self._injected_clock is None else self._injected_clock()
                        )
                    if item <= now:
                        self._expire(key)
                        self._misses += 1
                        return None
                self._hits += 1
                self._touch(key)
                return item
            self._misses += 1
            return None
        finally:
            self._lock.release()

    def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        found = {}
        with self._lock:
            now = self._now()
            for key in keys:
                item = self._live(key, now)
                if item is None:
                    self._misses += 1
                else:
                    self._hits += 1
                    self._touch(key)
                    found[key] = item
        return found

    def peek(self, key: str) -> Optional[Item]:
        with self._lock:
            return self._live(key, self._now())

    # -- writes --------------------------------------------------------------------------

    def update(self, key: str, change: ChangeFunction, *, read: bool = False) -> Optional[Item]:
        self._lock.acquire()  # not `with`: see get()
        try:
            now = time.time() if self._injected_clock is None else self._injected_clock()
            offset = self._wall_offset
            if offset is not None:  # TtlItems held: did the wall clock step? (inline: hot)
                monotonic = self._injected_monotonic
                step = now - offset - (time.monotonic() if monotonic is None else monotonic())
                if step >= WALL_STEP_SECONDS or step <= -WALL_STEP_SECONDS:
                    self._follow_wall_steps(now)
            items = self._items
            current = items.get(key)
            if current is not None and current <= now:
                self._expire(key)
                current = None
            if read:
                if current is None:
                    self._misses += 1
                else:
                    self._hits += 1
                    self._touch(key)
            new = change(current, now)
            if new is None:
                return current
            if new is DELETE:
                if current is not None:
                    self._forget(key, items.pop(key))
                    self._changes += 1
                if self._leases.busy:  # its lease ends, its stale copy goes
                    self._bytes += self._leases.written(key, None, now)
                return None
            stored = self._store(key, new, current, now)
            self._changes += 1
            if self._leases.busy:
                self._bytes += self._leases.written(key, stored, now)
                if self.max_bytes and self._bytes > self.max_bytes:
                    self._make_room(now)
            return stored
        finally:
            self._lock.release()

    # -- internals, called with the lock held --------------------------------------------

    def _now(self) -> float:
        now = time.time() if self._injected_clock is None else self._injected_clock()
        if self._wall_offset is not None:
            self._follow_wall_steps(now)
        return now

    def _live(self, key: str, now: float) -> Optional[Item]:
        """Return the item under `key`, reclaiming it instead if it has expired."""
        item = self._items.get(key)
        if item is not None and item <= now:
            self._expire(key)
            return None
        return item

    def _expire(self, key: str) -> None:
        """Reclaim the expired item under `key`, met by a read or a write."""
        self._forget(key, self._items.pop(key))
        self._expired += 1
        self._changes += 1

    def _forget(self, key: str, item: Item) -> None:
        """Uncount `item`, just taken out of the items (its index entry stays, stale)."""
        if item < NEVER:
            size = str_bytes(key) + str_bytes(item.value) + EXPIRING_ITEM_BYTES
            self._bytes -= size
            self._bytes -= self._index.forget(key, item, self._bytes)
        else:
            size = str_bytes(key) + str_bytes(item.value) + ITEM_BYTES
            self._bytes -= size
        if self._policy is not None:
            self._bytes -= self._policy.forgotten(key, item, size)

    def _store(self, key: str, item: Item, current: Optional[Item], now: float) -> Item:
        value = item.value
        expiring = item < NEVER
        key_bytes = _ASCII_STR_BYTES + len(key) if key.isascii() else getsizeof(key)
        size = (
            key_bytes
            + (_ASCII_STR_BYTES + len(value) if value.isascii() else getsizeof(value))
            + (EXPIRING_ITEM_BYTES if expiring else ITEM_BYTES)
        )
        max_bytes = self.max_bytes
        # Alone, with its second's bucket: if that does not fit, evicting cannot help.
        if max_bytes and size + (EXPIRY_SECOND_BYTES if expiring else 0) + self._policy_bytes > (
            max_bytes
        ):
            raise ItemTooLarge(f"{size} bytes do not fit in a store of {max_bytes} bytes")
        item.version = next(self._versions)
        items = self._items
        if item <= now:
            # Stored already expired: nothing is left to read, so nothing is kept.
            if current is not None:
                self._forget(key, items.pop(key))
            return item
        items[key] = item
        if expiring and self._wall_offset is None and item.__class__ is TtlItem:
            self._start_following_wall_steps(now)
        index = self._index
        policy = self._policy
        if current is None:
            self._bytes += size
            if expiring:
                self._bytes += index.file(key, item)
            if policy is not None:
                self._bytes += policy.admit(key, item, size)
        else:
            if policy is None:
                items.move_to_end(key)  # cheaper than deleting and inserting again
            current_value = current.value
            current_expiring = current < NEVER
            grown = size - (
                key_bytes  # the same key
                + (
                    _ASCII_STR_BYTES + len(current_value)
                    if current_value.isascii()
                    else getsizeof(current_value)
                )
                + (EXPIRING_ITEM_BYTES if current_expiring else ITEM_BYTES)
            )
            self._bytes += grown
            if policy is not None:
                policy.rewritten(key, item, current, grown)
            if current_expiring:
                second = int(current)
                # The common rewrite, into the same second: its entry stands for both.
                if not expiring or int(item) != second or second == index.due_second:
                    self._bytes += index.refile(key, current, item, self._bytes)
            elif expiring:
                self._bytes += index.refile(key, current, item, self._bytes)
        if index.next_expiry <= now:
            self._reclaim_expired(now, limit=self.SWEEP_STEP)
        if (self.max_keys and len(items) > self.max_keys) or (
            max_bytes and self._bytes > max_bytes
        ):
            self._make_room(now)
        return item

    def _make_room(self, now: float) -> None:
        """Evict until within capacity: expired items first, then leases and stale copies
        (oldest first), then the items the eviction policy picks (lru: the least recently
        used)."""
        items, policy = self._items, self._policy
        while (self.max_keys and len(items) > self.max_keys) or (
            self.max_bytes and self._bytes > self.max_bytes
        ):
            if self._index.next_expiry <= now and self._reclaim_expired(now, limit=1):
                continue
            if self.max_bytes and self._bytes > self.max_bytes and self._leases.entries:
                self._bytes -= self._leases.drop_oldest()
                continue
            if policy is None:
                key, evicted = items.popitem(last=False)
            else:
                over_keys = bool(self.max_keys) and len(items) > self.max_keys
                key = policy.victim(over_keys, self._bytes)
                evicted = items.pop(key)
            self._forget(key, evicted)
            self._evictions += 1

    def _reclaim_expired(self, now: float, limit: Optional[int]) -> int:
        """Remove up to `limit` (None: all) expired items, soonest expiry first."""
        reclaimed, uncounted = self._index.reclaim(now, limit)
        self._bytes -= uncounted
        self._expired += reclaimed
        self._changes += reclaimed
        return reclaimed
