"""A MemoryStore's leases and stale copies: memcached's answer to a stampede, per key.

A lease gives one reader of a missing (or stale) key the right to recompute it while the
others are told to wait; a stale copy is a value kept for lease readers after it stopped
being fresh (invalidated, or expired within the `stale` window it was written with), so
they keep answering while one reader refreshes it. Both live here, apart from the items:
every other read finds a stale key absent without looking, and the hot paths pay only
for a check that this table is busy on a write.

Every method is called with the store's lock held, and returns the bytes it added to or
took from what MAX_BYTES counts (the store adds them, as with its expiry index).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Optional

from .. import limits
from .base import NEVER, Item, str_bytes

# What an entry takes besides its key and its stale value: the entry object, its dict
# slot, a token and two floats. An estimate, counted so the table stays inside MAX_BYTES.
ENTRY_BYTES = 350


def new_token() -> str:
    """A lease token: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


class Entry:
    """A key's lease (token None: none) and stale copy (stale None: none)."""

    __slots__ = ("fresh_until", "lease_ends", "stale", "stale_until", "token")

    def __init__(self) -> None:
        self.token: Optional[str] = None
        self.lease_ends = 0.0
        # The copy, and when it stops being fresh and stops being kept (Unix seconds).
        self.stale: Optional[Item] = None
        self.fresh_until = 0.0
        self.stale_until = 0.0


class PendingWrite:
    """What a write with a lease or a stale window leaves to be done once it is stored."""

    __slots__ = ("item", "leased", "stale_seconds")

    def __init__(self, item: Item, stale_seconds: Optional[int], leased: bool):
        self.item = item
        self.stale_seconds = stale_seconds
        self.leased = leased


class LeaseTable:
    """Entries by key, oldest first: at most `max_entries`, the oldest let go past it."""

    def __init__(self, max_entries: int = limits.MAX_LEASES):
        self.max_entries = max_entries
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        # The item a write under a lease or with a stale window is about to store: written()
        # finishes it when that very item is stored (a refused write leaves it unused).
        self.pending: Optional[PendingWrite] = None
        # Whether a write must call written(): an entry to end, or a write to finish. An
        # attribute, not a property: every write of the store reads it.
        self.busy = False
        self.granted = 0
        self.stale_answers = 0
        self.fills = 0

    # -- leases ---------------------------------------------------------------------------

    def lease_left(self, key: str, now: float) -> Optional[float]:
        """Seconds left of the lease held on `key` (None: none held)."""
        entry = self.entries.get(key)
        if entry is None or entry.token is None or entry.lease_ends <= now:
            return None
        return entry.lease_ends - now

    def holds(self, key: str, token: str, now: float) -> bool:
        """Whether `token` is the current lease on `key`."""
        entry = self.entries.get(key)
        return (
            entry is not None
            and entry.token is not None
            and entry.lease_ends > now
            and secrets.compare_digest(entry.token, token)
        )

    def grant(self, key: str, seconds: int, now: float) -> tuple[str, int]:
        """A new lease on `key` for `seconds` (none may be held): its token, bytes added."""
        added = 0
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry()
            added = ENTRY_BYTES + str_bytes(key)
            self.busy = True
        self.entries.move_to_end(key)  # the newest: the last let go
        entry.token = new_token()
        entry.lease_ends = now + seconds
        self.granted += 1
        return entry.token, added - self._keep_within_count()

    # -- stale copies ---------------------------------------------------------------------

    def stale(self, key: str, now: float) -> tuple[Optional[Entry], int]:
        """The key's entry if it holds a stale copy to answer now (None: none), and the
        bytes let go: a copy past its stale window, or one of an item evicted while fresh."""
        entry = self.entries.get(key)
        if entry is None or entry.stale is None:
            return None, 0
        if entry.fresh_until <= now < entry.stale_until:
            return entry, 0
        return None, self._drop_copy(key, entry)

    def invalidated(self, key: str, item: Item, now: float) -> int:
        """Keep `item`, just taken out of the items, as a stale copy from now until its
        expiry (or the end of the stale window it was written with); end any lease."""
        entry = self.entries.get(key)
        added = 0
        if entry is None:
            entry = self.entries[key] = Entry()
            added = ENTRY_BYTES + str_bytes(key)
            self.busy = True
        elif entry.stale is not None:
            added -= str_bytes(entry.stale.value)
        self.entries.move_to_end(key)
        stale_until = float(item)  # an Item is its expiry (NEVER: it never expires)
        if entry.stale is item:  # written with a stale window: it still applies
            stale_until = entry.stale_until
        entry.token = None
        entry.stale = item
        entry.fresh_until = now
        entry.stale_until = stale_until
        return added + str_bytes(item.value) - self._keep_within_count()

    # -- writes ---------------------------------------------------------------------------

    def written(self, key: str, stored: Optional[Item], now: float) -> int:
        """A write changed `key` (stored: the item it wrote; None: deleted): end its lease
        and drop its stale copy; keep the new item's copy if it was written with a stale
        window (and not already expired: such a write keeps nothing, as on Redis).
        Returns the bytes added (negative: freed)."""
        freed = 0
        entry = self.entries.pop(key, None)
        if entry is not None:
            freed = ENTRY_BYTES + str_bytes(key)
            if entry.stale is not None:
                freed += str_bytes(entry.stale.value)
        pending, self.pending = self.pending, None
        self.busy = bool(self.entries)
        if pending is None or stored is None or pending.item is not stored:
            return -freed
        if pending.leased:
            self.fills += 1
        # An item that never expires never goes stale by expiring.
        if pending.stale_seconds is None or stored >= NEVER or stored <= now:
            return -freed
        self.busy = True
        entry = self.entries[key] = Entry()
        entry.stale = stored
        entry.fresh_until = float(stored)
        entry.stale_until = float(stored) + pending.stale_seconds
        return ENTRY_BYTES + str_bytes(key) + str_bytes(stored.value) - freed

    # -- the table as a whole (an entry let go may leave `busy` set: written() clears it) --

    def drop_oldest(self) -> int:
        """Let the oldest entry go (to make room); return the bytes freed."""
        key, entry = self.entries.popitem(last=False)
        return self._entry_bytes(key, entry)

    def drop_prefix(self, prefix: str) -> int:
        """Let every entry of a key starting with `prefix` go; return the bytes freed."""
        keys = [key for key in self.entries if key.startswith(prefix)]
        return sum(self._entry_bytes(key, self.entries.pop(key)) for key in keys)

    def expect(self, item: Item, stale_seconds: Optional[int], leased: bool) -> None:
        """A write under a lease or with a stale window is about to store `item`."""
        self.pending = PendingWrite(item, stale_seconds, leased)
        self.busy = True

    def clear(self) -> None:
        self.entries.clear()
        self.pending = None
        self.busy = False

    def _keep_within_count(self) -> int:
        freed = 0
        while len(self.entries) > self.max_entries:
            freed += self.drop_oldest()
        return freed

    def _drop_copy(self, key: str, entry: Entry) -> int:
        """Let the stale copy go, and the entry with it if it holds no current lease."""
        freed = str_bytes(entry.stale.value) if entry.stale is not None else 0
        entry.stale = None
        if entry.token is None:
            del self.entries[key]
            freed += ENTRY_BYTES + str_bytes(key)
        return freed

    @staticmethod
    def _entry_bytes(key: str, entry: Entry) -> int:
        stale = str_bytes(entry.stale.value) if entry.stale is not None else 0
        return ENTRY_BYTES + str_bytes(key) + stale
