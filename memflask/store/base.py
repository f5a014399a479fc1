"""The storage interface any backend implements: items and their clocks, sizes, errors,
the statistics, and the `Store` contract."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from sys import getsizeof
from typing import (
    Annotated,
    Any,
    Callable,
    Iterable,
    Mapping,
    NamedTuple,
    Optional,
    TypedDict,
    Union,
    get_type_hints,
)

from .scans import page_examines


class Clock:
    """Unix time in seconds, read from `time.time` at every call so freezegun can freeze it.

    `monotonic()` is the clock a relative `ttl` runs by: seconds that no step of the wall
    clock moves (an injected clock without it is taken as never stepping).
    """

    def __call__(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def server_time(self) -> Optional[float]:
        """None: a shared store's server decides expiry by its own clock (Redis's TIME)."""
        return None


# A change of (wall - monotonic) time at least this large is a step of the wall clock,
# which the deadlines of relative ttls are moved by; a smaller one is read jitter or the
# slow drift of a clock slewed apart from the other, and is left until it adds up to this.
WALL_STEP_SECONDS = 1.0


# The expiry of an item that never expires. The largest float rather than infinity, so an
# item given an infinite expiry keeps it (never reclaimed, and refused by snapshots as not
# finite) and every stored expiry compares with `now` as it is, with no None to test.
NEVER = 1.7976931348623157e308

_new_float = float.__new__


class TtlDeadline(float):
    """An expiry instant (Unix seconds) that a relative `ttl` gave: the item expires after
    that many seconds of the monotonic clock, whatever the wall clock does. An Item made
    with one is a TtlItem, whose store keeps its instant that many seconds from the wall
    clock's now, moving it when the wall clock steps (as memcached keeps every expiry on
    its own process clock). Arithmetic on it gives plain floats."""

    __slots__ = ()


class Item(float):
    """One value with its absolute expiry (None: never).

    An Item *is* its expiry instant: it subclasses float, holding the expiry inside its own
    64-byte object instead of in a separate 32-byte float (NEVER when it never expires):
    32 of the ~180 bytes a stored item with a TTL took besides its text. So items compare
    and hash as their expiry instants: compare items with `is`, never `==`.

    A change function returns a new Item to store; the store then stamps its write
    `version`. Stored items are not changed afterwards but for `uses`, the eviction policy's.
    """

    __slots__ = ("uses", "value", "version")

    value: str
    version: int
    uses: int

    def __new__(cls, value: str, expires_at: Optional[float] = None) -> Item:
        if expires_at is None:
            item = _new_float(cls, NEVER)
        else:
            # A ttl's deadline makes a TtlItem (TtlItem(...) is one whatever it is given).
            item = _new_float(TtlItem if expires_at.__class__ is TtlDeadline else cls, expires_at)
        item.value = value
        item.version = 0
        item.uses = 0
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


class TtlItem(Item):
    """An Item whose expiry a relative `ttl` gave: it expires by the monotonic clock.

    Its instant is the wall-clock time it expires at *now*: the store moves it when the wall
    clock steps (MemoryStore._follow_wall_steps). `expires_at` is a TtlDeadline, so an
    Item made from it (a write that keeps the expiry) is a TtlItem too.
    """

    __slots__ = ()

    @property
    def expires_at(self) -> Optional[float]:
        return None if self == NEVER else TtlDeadline(self)


class Delete:
    """A change that removes the key."""


DELETE = Delete()

# What a change function returns: a new Item, a removal, or None to leave the item as it is.
Change = Union[Item, Delete, None]
ChangeFunction = Callable[[Optional[Item], float], Change]


class LeaseRead(NamedTuple):
    """A read that may take a lease (Store.get_leased): the item (fresh or stale; None: a
    miss), the lease granted to this reader (None: none), and, on a miss while another
    reader holds the key's lease, the seconds until it ends."""

    item: Optional[Item] = None
    stale_for: Optional[float] = None  # a stale item's: seconds since it went stale
    token: Optional[str] = None
    lease_left: Optional[float] = None


class LeaseNotHeld(Exception):
    """A write under a lease that is not current: never given for this key, ended by its
    time, by another write, a delete or an invalidation, or already used."""


LEASE_NOT_HELD = (
    "the lease is not current: ended by its time, by another write, a delete or an "
    "invalidation, already used, or never given for this key"
)


class ItemTooLarge(ValueError):
    """An item alone is bigger than the store's whole byte capacity."""


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
# measured rather than estimated, where a cap matters: at the steady state of a store at
# its cap, items coming and going. It is the RSS growth per item held, beyond its key and
# value strings, of stores capped at 2^15 to 2^16 keys and written over four times in a
# fresh process (x86-64; CPython 3.9 to 3.13 measure within 8% of the first two, 12% of
# the third). tests/store/test_memory_cap.py measures them afresh and fails if one is more than
# 15% off (25% for the third, a difference of two measurements), so they cannot silently
# rot; `python -m tests.store.test_memory_cap` prints them.
#
# An item without expiry. Filled once, a store takes 178 bytes an item: its OrderedDict
# entry (~80: the table and the linked-list node), the Item object (64, its expiry inside)
# and its version int (32). Under a cap, the table also holds the slots of evicted items
# until it is next resized, and the allocator keeps what they freed: ~100 more.
ITEM_BYTES = 290
# An item with an expiry: the same, its key's slot in its second's bucket, and the share
# of an item in the stale entries the expiry index may hold (see _collect_index_garbage).
EXPIRING_ITEM_BYTES = 330
# Each whole second in which live items expire: its bucket in the expiry index (the list,
# its dict entry, the int naming the second). Paid once a second, shared by its items.
EXPIRY_SECOND_BYTES = 215
# An entry of the expiry index: a list slot, one pointer.
INDEX_ENTRY_BYTES = 8

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
    leases: Annotated[
        int, Metric("counter", "memflask_leases", "Leases granted to readers (/get?lease=).")
    ]
    staleAnswers: Annotated[
        int, Metric("counter", "memflask_stale_answers", "Stale values answered to lease readers.")
    ]
    leaseFills: Annotated[
        int, Metric("counter", "memflask_lease_fills", "Writes made under a current lease.")
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
    eviction: str  # /stats: the memory store's EVICTION, or "redis" (its maxmemory-policy)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Store:
        """The store an app's settings describe (STORE_URL, its limits, CLOCK)."""
        raise NotImplementedError(f"{cls.__name__} is not built from settings")

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

    def get_leased(
        self, key: str, lease_seconds: int, recache_seconds: Optional[int] = None
    ) -> LeaseRead:
        """Read `key` as a reader that may recompute it (memcached's `mg key N<s> R<s>`).

        A fresh item is a hit, and gets a lease too if `recache_seconds` is given, it
        expires within them, and no lease is held. Otherwise, if no lease is held on the
        key, this reader gets one for `lease_seconds`: with the item's stale copy if one
        is kept (see write's `stale` and invalidate), else on a miss. While another's lease
        is held, a stale copy is answered without a lease, and a miss tells when it ends.
        Counts a hit or a miss (a stale answer is a miss, and counted as stale too).
        """
        raise NotImplementedError(f"{type(self).__name__} has no leases")

    def invalidate(self, key: str) -> bool:
        """Make the live item under `key` stale: gone for every read but a lease reader's,
        who gets it (stale) until it is written, deleted, or its expiry (and stale window)
        passes. Ends any lease on the key. False if the key is absent."""
        raise NotImplementedError(f"{type(self).__name__} has no leases")

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
        before the end. A page examines at most scans.page_examines(limit) keys. Raises
        UnknownCursor for a cursor this store did not give for `prefix` (memflask/store/scans.py).
        """
        raise NotImplementedError

    # -- what scans cost: the work budget of a /batch (memflask/commands/budget.py) ---------

    def scan_size(self) -> int:
        """How many entries a whole scan of this store examines (its keys, expired or not).

        By default the live keys /stats counts; a backend that knows better says so.
        """
        return self.stats()["keyCount"]

    def scan_cost(self, size: int, cursor: str, limit: int) -> int:
        """At most how many entries one scan() call examines, `size` being scan_size()."""
        return min(size, page_examines(limit))

    def flush_cost(self, size: int, prefix: str) -> int:
        """At most how many entries flush() (no prefix) or delete_prefix() examines."""
        return size

    def write(
        self,
        key: str,
        change: ChangeFunction,
        server_change: Optional[ServerChange] = None,
        *,
        read: bool = False,
        lease: str = "",
        stale: Optional[int] = None,
    ) -> Optional[Item]:
        """Apply a write given both ways: `change`, and `server_change` (the same change as
        data, when the verb has one) for a backend that runs it server-side. By default
        `change` runs through update().

        `lease`: apply only under that current lease (else raise LeaseNotHeld, nothing
        changed). `stale`: seconds the item is kept past its expiry, stale, for lease
        readers. Every write that changes the key ends its lease and its stale copy.
        """
        if lease or stale is not None:
            raise NotImplementedError(f"{type(self).__name__} has no leases")
        return self.update(key, change, read=read)

    def close(self) -> None:  # noqa: B027 -- optional: most backends hold nothing to close
        """Release connections (a backend that holds none has nothing to do)."""
