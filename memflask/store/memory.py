"""The in-memory LRU store: the default backend."""

from __future__ import annotations

import heapq
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
    INDEX_ENTRY_BYTES,
    ITEM_BYTES,
    NEVER,
    WALL_STEP_SECONDS,
    Change,
    ChangeFunction,
    Clock,
    Item,
    ItemTooLarge,
    Store,
    StoreStats,
    TtlItem,
    str_bytes,
)
from .scans import MAX_SCANS, CursorSeal, ScanSnapshots, UnknownCursor, page_examines


class MemoryStore(Store):
    """A thread-safe LRU store with per-item expiry, bounded by key count and by memory.

    One lock guards everything. Items sit in an OrderedDict in recency order (most recent
    last). MAX_BYTES bounds the memory they take: each item counts its key and value str
    objects and its measured overhead (ITEM_BYTES, EXPIRING_ITEM_BYTES), and each whole
    second in which live items expire counts its bucket (EXPIRY_SECOND_BYTES).

    Items with an expiry are also filed by the whole second they expire in: a dict of
    second -> keys, and a heap of those seconds. That costs an item 8 bytes where a heap
    entry of its own took 72, and still lets expired items be reclaimed, soonest first,
    before any live one is evicted, and in small steps on every write. When a second
    comes due its keys are sorted by expiry once, then reclaimed in that order. Entries of
    items since rewritten or removed are skipped then; once they may hold more than an
    eighth of the memory counted, the index is rebuilt. The hot paths are written out
    inline: each method call saved is a measurable share of an operation (see bench/).
    """

    # How many expired items a single write reclaims on its way (Redis-like active expiry).
    SWEEP_STEP = 8
    # Index memory beyond what is counted that is never worth a rebuild (tests set 0).
    INDEX_GARBAGE_FLOOR = 64 * 1024

    def __init__(
        self,
        max_keys: int = 0,
        max_bytes: int = 0,
        clock: Optional[Callable[[], float]] = None,
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
        self._clear_expiry_index()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MemoryStore:
        return cls(
            max_keys=settings["SIZE"], max_bytes=settings["MAX_BYTES"], clock=settings["CLOCK"]
        )

    def _clear_expiry_index(self) -> None:
        # Whole second -> its bucket: how many live items expire in that second, then the
        # keys they were filed under, and entries of items since rewritten or removed
        # (skipped when the second comes due). One list, not a count beside it in a second
        # dict: items that each expire in a second of their own pay for a single table.
        # A bucket is counted against MAX_BYTES while its count is above 0.
        self._buckets: dict[int, list] = {}
        # The seconds in _buckets, soonest first (a heap).
        self._expiring_seconds: list[int] = []
        # The second being reclaimed: its bucket, keys sorted by expiry, how far reclaiming
        # got, and the first version written after the sort. Items written into that second
        # since then wait in _late instead, a heap of (item, version, key).
        self._due_second: Optional[int] = None
        self._due_bucket: list = [0]
        self._due_position = 1
        self._due_version = 0
        self._late: list[tuple[Item, int, str]] = []
        # No filed item expires before this time (a lower bound): writes sweep from then.
        self._next_expiry: float = NEVER
        # Memory the index may hold beyond what is counted: entries of rewritten and
        # removed items, keys only those keep alive, buckets left without live items.
        self._index_garbage = 0

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
                self._items.move_to_end(key)
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
                    self._items.move_to_end(key)
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
                    items.move_to_end(key)
            new = change(current, now)
            if new is None:
                return current
            if new is DELETE:
                if current is not None:
                    self._forget(key, items.pop(key))
                    self._changes += 1
                return None
            stored = self._store(key, new, current, now)
            self._changes += 1
            return stored
        finally:
            self._lock.release()

    def flush(self) -> None:
        with self._lock:
            # Items already past their expiry count as expired, however late the sweep.
            self._reclaim_expired(self._now(), limit=None)
            self._items.clear()
            self._bytes = 0
            self._clear_expiry_index()
            self._wall_offset = None
            self._changes += 1

    @property
    def changes(self) -> int:
        """A count that moves whenever the items change: a write, a delete, an expiry
        reclaimed, a flush, a restore (an eviction comes with a write). Reads do not move
        it, though a hit changes the recency order. The snapshot saver skips a save
        while it stands still."""
        return self._changes

    def export(self) -> list[tuple[str, str, Optional[float]]]:
        """Every live item as (key, value, expires_at), least recently used first."""
        with self._lock:
            now = self._now()
            return [
                (key, item.value, item.expires_at)
                for key, item in self._items.items()
                if item > now
            ]

    def restore(self, items: Iterable[tuple[str, str, Optional[float]]]) -> int:
        """Store exported items in order, so recency is kept; return how many are held.

        Expired items, and items too large for this store's cap, are skipped.
        """
        with self._lock:
            now = self._now()
            for key, value, expires_at in items:
                if expires_at is not None and expires_at <= now:
                    continue
                try:
                    self._store(key, Item(value, expires_at), self._items.get(key), now)
                except ItemTooLarge:
                    continue
            self._changes += 1
            return len(self._items)

    def stats(self) -> StoreStats:
        with self._lock:
            self._reclaim_expired(self._now(), limit=None)
            return StoreStats(
                keyCount=len(self._items),
                maxSize=self.max_keys,
                bytes=self._bytes,
                maxBytes=self.max_bytes,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expired=self._expired,
            )

    # -- namespaces: work in small steps, never the whole store under the lock ------------

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0

        def delete_if_present(current: Optional[Item], now: float) -> Change:
            nonlocal deleted
            if current is None:
                return None
            deleted += 1
            return DELETE

        # Filtered without the lock, and one key per lock hold: a /get waits for one
        # deletion at most, not for 10^6.
        for key in self._key_list():
            if key.startswith(prefix):
                self.update(key, delete_if_present)
        return deleted

    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        if cursor:
            scan_id, _, offset = self._cursor_seal.open(prefix, cursor).partition("-")
            keys = self._scans.get(scan_id)
            if keys is None or not offset.isdigit():
                raise UnknownCursor(
                    f"this cursor's scan was let go (at most {MAX_SCANS} scans run at once, "
                    "the oldest let go first); start again with no cursor"
                )
            position = int(offset)
        else:
            keys = self._key_list()
            scan_id, position = self._scans.add(keys), 0
        # Examine at most page_examines(limit) keys of the list, without the lock.
        end = min(len(keys), position + page_examines(limit))
        page: list[str] = []
        while position < end and len(page) < limit:
            key = keys[position]
            position += 1
            if key.startswith(prefix):
                page.append(key)
        with self._lock:
            now = self._now()
            live = [key for key in page if self._live(key, now) is not None]
        if position >= len(keys):
            self._scans.drop(scan_id)
            return live, ""
        return live, self._cursor_seal.seal(prefix, f"{scan_id}-{position}")

    def _key_list(self) -> list[str]:
        """Every key held now, in the dict's own order (a copy, so used without the lock).

        The dict's entries, not the OrderedDict's recency list: a C-level copy of an
        array, 2.5 ms for 300k keys and 11 ms for 10^6 here, where following the list
        took 27 ms and 184 ms (a read moves a key in the list, scattering it in memory).
        """
        with self._lock:
            return list(dict.keys(self._items))

    def scan_size(self) -> int:
        return len(self._items)

    def scan_cost(self, size: int, cursor: str, limit: int) -> int:
        # A new scan copies the key list (see _key_list), then examines its page.
        return (0 if cursor else size) + min(size, page_examines(limit))

    def flush_cost(self, size: int, prefix: str) -> int:
        return size if prefix else 0  # a whole flush empties the dict at once

    # -- internals, called with the lock held --------------------------------------------

    def _now(self) -> float:
        now = time.time() if self._injected_clock is None else self._injected_clock()
        if self._wall_offset is not None:
            self._follow_wall_steps(now)
        return now

    def _monotonic(self) -> float:
        monotonic = self._injected_monotonic
        return time.monotonic() if monotonic is None else monotonic()

    def _follow_wall_steps(self, now: float) -> bool:
        """Keep TtlItems' instants `now`-relative if the wall clock stepped; True if it did.

        A relative ttl runs by the monotonic clock: a TtlItem's instant is its monotonic
        deadline plus _wall_offset (wall minus monotonic time when last in step). When that
        difference moves by a step, every TtlItem's instant and the offset move by it, so
        the seconds it has left stay; get() judges a TtlItem by the monotonic clock plus the
        offset, right before and after. One pass over the items: a step is rare. Checked
        by every write and every read but get() (each reads the wall clock anyway), so
        /ttl, snapshots and the expiry index see instants on the wall clock's time. A
        drift under WALL_STEP_SECONDS (clocks slewed apart: not on Linux, whose monotonic
        clock is slewed with the wall clock) moves nothing until it adds up to one.
        """
        step = now - self._monotonic() - self._wall_offset
        if -WALL_STEP_SECONDS < step < WALL_STEP_SECONDS:
            return False
        self._wall_offset += step
        items = self._items
        moved = [key for key, item in items.items() if item.__class__ is TtlItem and item < NEVER]
        if not moved:
            return False
        for key in moved:
            item = items[key]
            items[key] = replacement = TtlItem(item.value, float(item) + step)
            replacement.version = item.version
        seconds_before = sum(1 for bucket in self._buckets.values() if bucket[0])
        seconds_before += 1 if self._due_second is not None and self._due_bucket[0] else 0
        self._rebuild_expiry_index()
        self._bytes += (len(self._buckets) - seconds_before) * EXPIRY_SECOND_BYTES
        self._make_room(now)  # the seconds' buckets may have grown past MAX_BYTES
        self._changes += 1
        return True

    def _start_following_wall_steps(self, now: float) -> None:
        """Note wall minus monotonic time now: the first TtlItem is being stored."""
        self._wall_offset = now - self._monotonic()

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
            self._bytes -= str_bytes(key) + str_bytes(item.value) + EXPIRING_ITEM_BYTES
            self._unfile(item)
            # The stale entry keeps the key alive until its second comes due.
            self._index_garbage += INDEX_ENTRY_BYTES + str_bytes(key)
            self._collect_index_garbage()
        else:
            self._bytes -= str_bytes(key) + str_bytes(item.value) + ITEM_BYTES

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
        if max_bytes and size + (EXPIRY_SECOND_BYTES if expiring else 0) > max_bytes:
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
        if current is None:
            self._bytes += size
            if expiring:
                self._file(key, item)
        else:
            items.move_to_end(key)  # cheaper than deleting and inserting again
            current_value = current.value
            current_expiring = current < NEVER
            self._bytes += size - (
                key_bytes  # the same key
                + (
                    _ASCII_STR_BYTES + len(current_value)
                    if current_value.isascii()
                    else getsizeof(current_value)
                )
                + (EXPIRING_ITEM_BYTES if current_expiring else ITEM_BYTES)
            )
            if current_expiring:
                second = int(current)
                # The common rewrite, into the same second: its entry stands for both.
                if not expiring or int(item) != second or second == self._due_second:
                    self._refile(key, current, item)
            elif expiring:
                self._refile(key, current, item)
        if self._next_expiry <= now:
            self._reclaim_expired(now, limit=self.SWEEP_STEP)
        if (self.max_keys and len(items) > self.max_keys) or (
            max_bytes and self._bytes > max_bytes
        ):
            self._make_room(now)
        return item

    def _make_room(self, now: float) -> None:
        """Evict until within capacity: expired items first, then least recently used."""
        items = self._items
        while (self.max_keys and len(items) > self.max_keys) or (
            self.max_bytes and self._bytes > self.max_bytes
        ):
            if self._next_expiry <= now and self._reclaim_expired(now, limit=1):
                continue
            key, evicted = items.popitem(last=False)
            self._forget(key, evicted)
            self._evictions += 1

    # -- the expiry index ------------------------------------------------------------------

    def _file(self, key: str, item: Item) -> None:
        """File the expiring `item` under its second, counting the second's bucket if new."""
        second = int(item)
        if second == self._due_second:
            bucket = self._due_bucket
            heapq.heappush(self._late, (item, item.version, key))
        else:
            bucket = self._buckets.get(second)
            if bucket is None:
                self._buckets[second] = bucket = [0, key]
                heapq.heappush(self._expiring_seconds, second)
            else:
                bucket.append(key)
        if second < self._next_expiry:
            self._next_expiry = second
        if not bucket[0]:
            self._bytes += EXPIRY_SECOND_BYTES
        bucket[0] += 1

    def _unfile(self, item: Item) -> None:
        """Uncount the expiring `item` in its second (the entry itself stays, or is used up)."""
        second = int(item)
        bucket = self._due_bucket if second == self._due_second else self._buckets[second]
        bucket[0] -= 1
        if not bucket[0]:
            self._bytes -= EXPIRY_SECOND_BYTES
            self._index_garbage += EXPIRY_SECOND_BYTES  # it stays until due, or a rebuild

    def _refile(self, key: str, current: Item, new: Item) -> None:
        """File a rewritten item: `current` was there, `new` replaces it (either may not expire)."""
        if current < NEVER:
            # (_store has seen that `new` does not expire in the same second, or that this
            # second is being reclaimed: its sorted keys no longer stand for `new`.)
            self._unfile(current)
            self._index_garbage += INDEX_ENTRY_BYTES
        if new < NEVER:
            self._file(key, new)
            # Its entry holds the key written, which may be a copy of the one the items hold.
            self._index_garbage += str_bytes(key)
        self._collect_index_garbage()

    def _collect_index_garbage(self) -> None:
        """Rebuild the index once its stale entries may hold an eighth of the memory counted."""
        if self._index_garbage > (self._bytes >> 3) + self.INDEX_GARBAGE_FLOOR:
            self._rebuild_expiry_index()

    def _rebuild_expiry_index(self) -> None:
        """File every expiring item afresh, dropping the entries of rewritten or removed ones.

        The index's dict and heap are refilled in place rather than made anew: tables of
        this size come from malloc, and swapping them for new ones on every rebuild left
        holes in its heap that RSS kept.
        """
        buckets = self._buckets
        for bucket in buckets.values():
            bucket[:] = [0]
        for key, item in self._items.items():
            if item < NEVER:
                second = int(item)
                bucket = buckets.get(second)
                if bucket is None:
                    buckets[second] = [1, key]
                else:
                    bucket[0] += 1
                    bucket.append(key)
        for second in [second for second, bucket in buckets.items() if not bucket[0]]:
            del buckets[second]
        seconds = self._expiring_seconds
        seconds[:] = buckets
        heapq.heapify(seconds)
        self._due_second, self._due_bucket, self._due_position = None, [0], 1
        self._late.clear()
        self._next_expiry = seconds[0] if seconds else NEVER
        self._index_garbage = 0

    def _reclaim_expired(self, now: float, limit: Optional[int]) -> int:
        """Remove up to `limit` (None: all) expired items, soonest expiry first."""
        reclaimed = 0
        items = self._items
        while limit is None or reclaimed < limit:
            if self._due_second is None and not self._start_due_second(now):
                break
            # The soonest of the due second's sorted keys, skipping entries of items that
            # are gone, expire in another second, or were written since the sort.
            second, keys, position = self._due_second, self._due_bucket, self._due_position
            sorted_item = None
            while position < len(keys):
                sorted_item = items.get(keys[position])
                if (
                    sorted_item is not None
                    and sorted_item.version < self._due_version
                    and int(sorted_item) == second
                ):
                    break
                sorted_item = None
                position += 1
            self._due_position = position
            late = self._late
            while late and items.get(late[0][2]) is not late[0][0]:
                heapq.heappop(late)
            if late and (sorted_item is None or late[0][0] < sorted_item):
                item, _, key = late[0]
                if item > now:
                    self._next_expiry = float(item)
                    break
                heapq.heappop(late)
            elif sorted_item is not None:
                item, key = sorted_item, keys[position]
                if item > now:
                    self._next_expiry = float(item)
                    break
                self._due_position = position + 1
            else:
                # This second is done.
                self._due_second, self._due_bucket, self._due_position = None, [0], 1
                continue
            del items[key]
            self._bytes -= str_bytes(key) + str_bytes(item.value) + EXPIRING_ITEM_BYTES
            self._unfile(item)
            self._expired += 1
            reclaimed += 1
        self._changes += reclaimed
        return reclaimed

    def _start_due_second(self, now: float) -> bool:
        """Start reclaiming the soonest second if it has come; False if none has."""
        seconds = self._expiring_seconds
        if not seconds or seconds[0] > now:
            self._next_expiry = seconds[0] if seconds else NEVER
            return False
        second = heapq.heappop(seconds)
        bucket = self._buckets.pop(second)
        items = self._items
        # An Item compares as its expiry. Entries of removed items sort first, and so does
        # the count, and the sort is stable: the count stays first.
        bucket.sort(key=lambda key: items.get(key, -1.0))
        self._due_second, self._due_bucket, self._due_position = second, bucket, 1
        self._due_version = next(self._versions)
        return True
