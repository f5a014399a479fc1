"""The cache's storage: the interface any backend implements, and the in-memory LRU store."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from sys import getsizeof
from typing import (
    Annotated,
    Any,
    Callable,
    Iterable,
    NamedTuple,
    Optional,
    TypedDict,
    Union,
    get_type_hints,
)


class Clock:
    """Unix time in seconds, read from `time.time` at every call so freezegun can freeze it."""

    def __call__(self) -> float:
        return time.time()


# The expiry of an item that never expires. The largest float rather than infinity, so an
# item given an infinite expiry keeps it (never reclaimed, and refused by snapshots as not
# finite) and every stored expiry compares with `now` as it is, with no None to test.
NEVER = 1.7976931348623157e308

_new_float = float.__new__


class Item(float):
    """One value with its absolute expiry (None: never).

    An Item *is* its expiry instant: it subclasses float, holding the expiry inside its own
    64-byte object instead of in a separate 32-byte float (NEVER when it never expires).
    That is an eighth of what an item with a TTL costs (see ITEM_BYTES). So items compare
    and hash as their expiry instants: compare items with `is`, never `==`.

    A change function returns a new Item to store; the store then stamps its write
    `version`. Stored items are not changed afterwards: every write stores a new one.
    `size` is the UTF-8 bytes of key and value where a backend records them (the Redis
    store); the memory store leaves it 0 and accounts memory instead (`item_bytes`).
    """

    __slots__ = ("size", "value", "version")

    value: str
    version: int
    size: int

    def __new__(cls, value: str, expires_at: Optional[float] = None) -> Item:
        item = _new_float(cls, NEVER if expires_at is None else expires_at)
        item.value = value
        item.version = 0
        item.size = 0
        return item

    @property
    def expires_at(self) -> Optional[float]:
        return None if self == NEVER else float(self)

    def __bool__(self) -> bool:
        return True  # an item is there, whatever its expiry (a float 0.0 would be false)

    def __getnewargs__(self) -> tuple[str, Optional[float]]:  # type: ignore[override]
        return self.value, self.expires_at  # copy and pickle call __new__ with these

    def __repr__(self) -> str:
        return f"Item({self.value!r}, expires_at={self.expires_at!r}, version={self.version})"


class Delete:
    """A change that removes the key."""


DELETE = Delete()

# What a change function returns: a new Item, a removal, or None to leave the item as it is.
Change = Union[Item, Delete, None]
ChangeFunction = Callable[[Optional[Item], float], Change]


class ItemTooLarge(ValueError):
    """An item alone is bigger than the store's whole byte capacity."""


class UnknownCursor(LookupError):
    """A scan cursor the store did not give, or one whose scan it has since let go."""


class StoreUnavailable(RuntimeError):
    """The backend (a Redis server) is down or too slow to answer."""


class WriteOutcomeUnknown(StoreUnavailable):
    """A write was sent but its answer never came: it may or may not have been applied."""


class ServerChange(NamedTuple):
    """A write described as data, so a backend can run it where the data is, in one step
    (the Redis store: one Lua script). The verb's change function stays the reference;
    a verb without a description (a plugin's) runs its change function through update().
    """

    kind: str  # set, add, replace, checkandset, append, prepend, count, delete, touch
    value: str = ""
    compare: str = ""  # checkandset
    amount: int = 0  # count: added to the stored integer
    expiry: Any = None  # a params.Expiry, resolved with the store's clock; None: none taken
    keeps_expiry: bool = False  # with no expiry given, the current item's is kept
    max_value_bytes: int = 0  # append, prepend: the most the grown value may hold
    if_match: Optional[frozenset[str]] = None  # the request's entity tags (headers.Conditions)
    if_none_match: Optional[frozenset[str]] = None


def utf8_len(text: str) -> int:
    """Return the UTF-8 length of `text` without encoding ASCII text."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# What MAX_BYTES counts: the memory the items really take, not the UTF-8 bytes of their
# text. A str takes sys.getsizeof(text): a header of about 50 bytes, then 1, 2 or 4 bytes
# a character (by its widest character). Everything else an item costs is a constant,
# measured rather than estimated: RSS growth per item of a MemoryStore filled in a fresh
# process, its keys and values made beforehand, averaged over fills from 2^17 to 2^18
# items so the OrderedDict's table is seen at every load between its resizes (CPython 3.11,
# x86-64). tests/test_memory_cap.py measures them afresh and fails if one is more than 15%
# off, so they cannot silently rot; `python -m tests.test_memory_cap` prints them.
#
# An item without expiry: its OrderedDict entry (~80 bytes: the table and the linked list
# node), the Item object (64) and its version int (32).
ITEM_BYTES = 176
# An item with an expiry: the same plus its key's slot in its second's expiry bucket.
EXPIRING_ITEM_BYTES = 185
# Each whole second in which live items expire: its bucket in the expiry index (a list,
# its dict entries, the int naming the second). Paid once per second, shared by its items.
EXPIRY_SECOND_BYTES = 200

# sys.getsizeof of an ASCII str is this plus its length; str_bytes() adds it up itself
# because sys.getsizeof costs four times a len() on the write path.
_ASCII_STR_BYTES = getsizeof("")


def str_bytes(text: str) -> int:
    """The bytes the str object `text` takes (sys.getsizeof), fast for ASCII."""
    return _ASCII_STR_BYTES + len(text) if text.isascii() else getsizeof(text)


def item_bytes(key: str, value: str, expires_at: Optional[float]) -> int:
    """What MemoryStore counts against MAX_BYTES for an item (besides its second's bucket)."""
    expiring = expires_at is not None and expires_at < NEVER
    return str_bytes(key) + str_bytes(value) + (EXPIRING_ITEM_BYTES if expiring else ITEM_BYTES)


class Metric(NamedTuple):
    """How /metrics exposes a stats field: a counter or a gauge ("": not exposed)."""

    kind: str
    name: str
    help: str


class StoreStats(TypedDict):
    """The store's counters; these field names are the ones `/stats` answers."""

    keyCount: Annotated[int, Metric("gauge", "memflask_items", "Live keys held.")]
    maxSize: Annotated[int, Metric("", "", "SIZE: most keys held (0: no cap).")]
    bytes: Annotated[
        int, Metric("gauge", "memflask_bytes", "Memory the items take, as MAX_BYTES counts it.")
    ]
    maxBytes: Annotated[int, Metric("", "", "MAX_BYTES: most memory the items take (0: no cap).")]
    hits: Annotated[int, Metric("counter", "memflask_hits", "Reads that found a live key.")]
    misses: Annotated[
        int, Metric("counter", "memflask_misses", "Reads that found no key, or an expired one.")
    ]
    evictions: Annotated[
        int, Metric("counter", "memflask_evictions", "Live items evicted by SIZE or MAX_BYTES.")
    ]
    expired: Annotated[
        int, Metric("counter", "memflask_expired", "Items reclaimed after their expiry.")
    ]


# Each stats field with how it is exposed, in the order /stats lists them.
STATS_METRICS: dict[str, Metric] = {
    name: hint.__metadata__[0]
    for name, hint in get_type_hints(StoreStats, include_extras=True).items()
}
STATS_FIELDS = tuple(STATS_METRICS)


class Store(ABC):
    """What every storage backend offers. Each method is atomic."""

    # Unix seconds now, as the store sees it (injected, so tests can control time).
    clock: Callable[[], float]

    @abstractmethod
    def get(self, key: str) -> Optional[Item]:
        """Return the live item (counting a hit or a miss) and make it most recent."""

    @abstractmethod
    def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        """Return the live items among `keys`, counting each hit and miss."""

    @abstractmethod
    def peek(self, key: str) -> Optional[Item]:
        """Return the live item without counting a read or changing its recency."""

    @abstractmethod
    def update(self, key: str, change: ChangeFunction, *, read: bool = False) -> Optional[Item]:
        """Apply `change(current_item_or_None, now)` atomically and return the item it leaves.

        An exception raised by `change` aborts the update with nothing changed.
        An Item whose expiry is already past leaves no item behind, but is still returned
        so the caller can report what was written. `read=True` counts a hit or
        a miss, for verbs that read and write at once.
        """

    @abstractmethod
    def flush(self) -> None:
        """Remove every key."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Return the store's counters."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with `prefix`; return how many were removed.

        Keys written while it runs may stay. It never holds the whole store for the
        whole scan: other requests go on meanwhile.
        """
        raise NotImplementedError

    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        """One page of at most `limit` live keys starting with `prefix`, and the next cursor.

        Start with an empty cursor; an empty cursor returned means the scan is done. As with
        Redis SCAN: a key present for the whole scan is returned at least once, a key may
        be returned more than once, and a page may hold fewer than `limit` keys (even none)
        before the end. Raises UnknownCursor for a cursor this store did not give.
        """
        raise NotImplementedError

    def write(
        self,
        key: str,
        change: ChangeFunction,
        described: Optional[ServerChange] = None,
        *,
        read: bool = False,
    ) -> Optional[Item]:
        """Apply a write given both ways: `change`, and `described` (the same change as
        data, when the verb has one) for a backend that runs it server-side. By default
        `change` runs through update()."""
        return self.update(key, change, read=read)

    def close(self) -> None:  # noqa: B027 -- optional: most backends hold nothing to close
        """Release connections (a backend that holds none has nothing to do)."""


class MemoryStore(Store):
    """A thread-safe LRU store with per-item expiry, bounded by key count and by bytes.

    One lock guards everything. Items sit in an OrderedDict in recency order (most recent
    last). Items with an expiry also sit in a heap ordered by expiry, so expired items can
    be reclaimed before any live one is evicted, and in small steps on every write.
    Heap entries of items that were since rewritten or removed are skipped when popped.
    The hot paths are written out inline: each method call saved is a measurable share
    of an operation (see bench/).
    """

    # How many expired items a single write reclaims on its way (Redis-like active expiry).
    SWEEP_STEP = 8

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
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Item] = OrderedDict()
        # /keys: each scan lists the matching keys once, at its start (see scan()).
        self._scans = ScanSnapshots(MAX_SCANS)
        self._scan_ids = itertools.count(1)
        self._expiries: list[tuple[float, int, str]] = []
        self._versions = itertools.count(1)
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expired = 0

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> Optional[Item]:
        # acquire/try/release rather than `with`: half the cost, on the hottest path.
        self._lock.acquire()
        try:
            item = self._items.get(key)
            if item is not None:
                expires_at = item.expires_at
                if expires_at is None or expires_at > (
                    time.time() if self._injected_clock is None else self._injected_clock()
                ):
                    self._hits += 1
                    self._items.move_to_end(key)
                    return item
                self._expire(key)
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
            items = self._items
            current = items.get(key)
            if current is not None and current.expires_at is not None and current.expires_at <= now:
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
                    self._bytes -= items.pop(key).size
                return None
            return self._store(key, new, current, now)
        finally:
            self._lock.release()

    def flush(self) -> None:
        with self._lock:
            # Items already past their expiry count as expired, however late the sweep.
            self._reclaim_expired(self._now(), limit=None)
            self._items.clear()
            self._expiries.clear()
            self._bytes = 0

    def export(self) -> list[tuple[str, str, Optional[float]]]:
        """Every live item as (key, value, expires_at), least recently used first."""
        with self._lock:
            now = self._now()
            return [
                (key, item.value, item.expires_at)
                for key, item in self._items.items()
                if item.expires_at is None or item.expires_at > now
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

        # One key per lock hold: a /get waits for one deletion at most, not for 10^6.
        for key in self._keys_starting_with(prefix):
            self.update(key, delete_if_present)
        return deleted

    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        if not cursor:
            scan_id = next(self._scan_ids)
            self._scans.add(scan_id, self._keys_starting_with(prefix))
            offset = 0
        else:
            scan_id, offset = _parse_cursor(cursor)
        keys = self._scans.get(scan_id)
        if keys is None:
            raise UnknownCursor(f"unknown or expired cursor {cursor[:40]!r}; start again")
        page = keys[offset : offset + limit]
        with self._lock:
            now = self._now()
            live = [key for key in page if self._live(key, now) is not None]
        if offset + limit >= len(keys):
            self._scans.drop(scan_id)
            return live, ""
        return live, f"{scan_id}-{offset + limit}"

    def _keys_starting_with(self, prefix: str) -> list[str]:
        """The keys held now that start with `prefix` (a copy: filtered without the lock)."""
        with self._lock:
            keys = list(self._items)  # a C-level copy: milliseconds for 10^6 keys
        return [key for key in keys if key.startswith(prefix)] if prefix else keys

    # -- internals, called with the lock held --------------------------------------------

    def _now(self) -> float:
        return time.time() if self._injected_clock is None else self._injected_clock()

    def _live(self, key: str, now: float) -> Optional[Item]:
        """Return the item under `key`, reclaiming it instead if it has expired."""
        item = self._items.get(key)
        if item is not None and item.expires_at is not None and item.expires_at <= now:
            self._expire(key)
            return None
        return item

    def _expire(self, key: str) -> None:
        self._bytes -= self._items.pop(key).size
        self._expired += 1

    def _store(self, key: str, item: Item, current: Optional[Item], now: float) -> Item:
        value = item.value
        size = (len(key) if key.isascii() else utf8_len(key)) + (
            len(value) if value.isascii() else utf8_len(value)
        )
        if self.max_bytes and size > self.max_bytes:
            raise ItemTooLarge(f"{size} bytes do not fit in a store of {self.max_bytes} bytes")
        item.version = next(self._versions)
        item.size = size
        items = self._items
        expires_at = item.expires_at
        if expires_at is not None and expires_at <= now:
            # Stored already expired: nothing is left to read, so nothing is kept.
            if current is not None:
                self._bytes -= items.pop(key).size
            return item
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, item.version, key))
        items[key] = item
        if current is not None:
            items.move_to_end(key)  # cheaper than deleting and inserting again
            self._bytes -= current.size
        self._bytes += size
        if len(self._expiries) > 2 * len(items) + 64:
            self._compact_expiries()
        if self._expiries and self._expiries[0][0] <= now:
            self._reclaim_expired(now, limit=self.SWEEP_STEP)
        if self._over_capacity():
            self._make_room(now)
        return item

    def _over_capacity(self) -> bool:
        return bool(
            (self.max_keys and len(self._items) > self.max_keys)
            or (self.max_bytes and self._bytes > self.max_bytes)
        )

    def _make_room(self, now: float) -> None:
        """Evict until within capacity: expired items first, then least recently used."""
        while self._over_capacity():
            if self._reclaim_expired(now, limit=1):
                continue
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.size
            self._evictions += 1

    def _reclaim_expired(self, now: float, limit: Optional[int]) -> int:
        """Remove up to `limit` (None: all) expired items, oldest expiry first."""
        reclaimed = 0
        expiries = self._expiries
        while expiries and expiries[0][0] <= now and (limit is None or reclaimed < limit):
            _, version, key = heapq.heappop(expiries)
            item = self._items.get(key)
            if item is not None and item.version == version:
                self._expire(key)
                reclaimed += 1
        return reclaimed

    def _compact_expiries(self) -> None:
        """Rebuild the heap when entries of rewritten items outnumber the live ones."""
        self._expiries = [
            (item.expires_at, item.version, key)
            for key, item in self._items.items()
            if item.expires_at is not None
        ]
        heapq.heapify(self._expiries)


# Scans a memory store keeps going at once; a new one lets the oldest go (its next page
# answers UnknownCursor). Each holds a list of its matching keys: 8 bytes a key.
MAX_SCANS = 8


class ScanSnapshots:
    """The key lists of the scans in progress, oldest let go first; thread-safe."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._scans: OrderedDict[int, list[str]] = OrderedDict()

    def add(self, scan_id: int, keys: list[str]) -> None:
        with self._lock:
            self._scans[scan_id] = keys
            while len(self._scans) > self.limit:
                self._scans.popitem(last=False)

    def get(self, scan_id: int) -> Optional[list[str]]:
        with self._lock:
            return self._scans.get(scan_id)

    def drop(self, scan_id: int) -> None:
        with self._lock:
            self._scans.pop(scan_id, None)


def _parse_cursor(cursor: str) -> tuple[int, int]:
    scan_id, _, offset = cursor.partition("-")
    if not (scan_id.isdigit() and offset.isdigit() and scan_id.isascii() and offset.isascii()):
        raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again")
    return int(scan_id), int(offset)
