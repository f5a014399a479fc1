"""The memory store's expiry index: its expiring items, filed by the whole second they
expire in, so expired items are reclaimed soonest first without a heap entry each."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import TYPE_CHECKING, Iterator, Optional

from .base import (
    EXPIRING_ITEM_BYTES,
    EXPIRY_SECOND_BYTES,
    INDEX_ENTRY_BYTES,
    NEVER,
    Item,
    str_bytes,
)

if TYPE_CHECKING:
    from .eviction import S3Fifo


class ExpiryIndex:
    """The expiring items of a MemoryStore, by the whole second they expire in.

    A dict of second -> keys, and a heap of those seconds: that costs an item 8 bytes
    where a heap entry of its own took 72, and still lets expired items be reclaimed,
    soonest first, in small steps. When a second comes due its keys are sorted by expiry
    once, then reclaimed in that order. Entries of items since rewritten or removed are
    skipped then; once they may hold more than an eighth of the memory counted, the index
    is rebuilt. Each whole second in which live items expire counts its bucket
    (EXPIRY_SECOND_BYTES) against MAX_BYTES: the methods return the bytes they count or
    uncount, which the store adds to its own count. The store's lock guards it.
    """

    # Index memory beyond what is counted that is never worth a rebuild (tests set 0).
    GARBAGE_FLOOR = 64 * 1024

    def __init__(
        self,
        items: OrderedDict[str, Item],
        versions: Iterator[int],
        policy: Optional[S3Fifo] = None,
    ):
        self.items = items  # the store's own items, which `reclaim` removes from
        self.versions = versions  # the store's item versions (see `_start_due_second`)
        self.policy = policy  # the store's eviction policy, told of what `reclaim` removes
        self.garbage_floor = self.GARBAGE_FLOOR
        self.clear()

    def clear(self) -> None:
        # Whole second -> its bucket: how many live items expire in that second, then the
        # keys they were filed under, and entries of items since rewritten or removed
        # (skipped when the second comes due). One list, not a count beside it in a second
        # dict: items that each expire in a second of their own pay for a single table.
        # A bucket is counted against MAX_BYTES while its count is above 0.
        self.buckets: dict[int, list] = {}
        # The seconds in buckets, soonest first (a heap).
        self.seconds: list[int] = []
        # The second being reclaimed: its bucket, keys sorted by expiry, how far reclaiming
        # got, and the first version written after the sort. Items written into that second
        # since then wait in `late` instead, a heap of (item, version, key).
        self.due_second: Optional[int] = None
        self.due_bucket: list = [0]
        self.due_position = 1
        self.due_version = 0
        self.late: list[tuple[Item, int, str]] = []
        # No filed item expires before this time (a lower bound): writes sweep from then.
        self.next_expiry: float = NEVER
        # Memory the index may hold beyond what is counted: entries of rewritten and
        # removed items, keys only those keep alive, buckets left without live items.
        self.garbage = 0

    def file(self, key: str, item: Item) -> int:
        """File the expiring `item` under its second; the bytes counted (a new second's)."""
        second = int(item)
        if second == self.due_second:
            bucket = self.due_bucket
            heapq.heappush(self.late, (item, item.version, key))
        else:
            bucket = self.buckets.get(second)
            if bucket is None:
                self.buckets[second] = bucket = [0, key]
                heapq.heappush(self.seconds, second)
            else:
                bucket.append(key)
        if second < self.next_expiry:
            self.next_expiry = second
        bucket[0] += 1
        return EXPIRY_SECOND_BYTES if bucket[0] == 1 else 0

    def unfile(self, item: Item) -> int:
        """Uncount the expiring `item` in its second (the entry itself stays, or is used
        up); the bytes uncounted (its second's, if it was the last there)."""
        second = int(item)
        bucket = self.due_bucket if second == self.due_second else self.buckets[second]
        bucket[0] -= 1
        if bucket[0]:
            return 0
        self.garbage += EXPIRY_SECOND_BYTES  # it stays until due, or a rebuild
        return EXPIRY_SECOND_BYTES

    def forget(self, key: str, item: Item, counted: int) -> int:
        """Uncount the expiring `item`, just taken out of the items (its entry stays,
        stale, and keeps the key alive until its second comes due); the bytes uncounted.
        `counted` is the memory the store counts, which bounds the index's garbage."""
        uncounted = self.unfile(item)
        self.garbage += INDEX_ENTRY_BYTES + str_bytes(key)
        return uncounted - self.collect_garbage(counted - uncounted)

    def refile(self, key: str, current: Item, new: Item, counted: int) -> int:
        """File a rewritten item: `current` was there, `new` replaces it (either may not
        expire); the bytes this counts (less those it uncounts)."""
        change = 0
        if current < NEVER:
            # (The store has seen that `new` does not expire in the same second, or that
            # this second is being reclaimed: its sorted keys no longer stand for `new`.)
            change -= self.unfile(current)
            self.garbage += INDEX_ENTRY_BYTES
        if new < NEVER:
            change += self.file(key, new)
            # Its entry holds the key written, which may be a copy of the one the items hold.
            self.garbage += str_bytes(key)
        return change + self.collect_garbage(counted + change)

    def collect_garbage(self, counted: int) -> int:
        """Rebuild once stale entries may hold an eighth of the memory counted; the bytes
        counted anew (none: a rebuild files the same seconds)."""
        if self.garbage > (counted >> 3) + self.garbage_floor:
            return self.rebuild()
        return 0

    def counted_seconds(self) -> int:
        """The seconds whose buckets are counted: those with live items."""
        counted = sum(1 for bucket in self.buckets.values() if bucket[0])
        return counted + (1 if self.due_second is not None and self.due_bucket[0] else 0)

    def rebuild(self) -> int:
        """File every expiring item afresh, dropping the entries of rewritten or removed
        ones; the bytes counted anew (a wall-clock step moves items to other seconds).

        The dict and heap are refilled in place rather than made anew: tables of this size
        come from malloc, and swapping them for new ones on every rebuild left holes in its
        heap that RSS kept.
        """
        before = self.counted_seconds()
        buckets = self.buckets
        for bucket in buckets.values():
            bucket[:] = [0]
        for key, item in self.items.items():
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
        seconds = self.seconds
        seconds[:] = buckets
        heapq.heapify(seconds)
        self.due_second, self.due_bucket, self.due_position = None, [0], 1
        self.late.clear()
        self.next_expiry = seconds[0] if seconds else NEVER
        self.garbage = 0
        return (len(buckets) - before) * EXPIRY_SECOND_BYTES

    def reclaim(self, now: float, limit: Optional[int]) -> tuple[int, int]:
        """Remove up to `limit` (None: all) expired items from the items, soonest expiry
        first; return how many, and the bytes uncounted (the items' and their seconds')."""
        reclaimed = uncounted = 0
        items = self.items
        while limit is None or reclaimed < limit:
            if self.due_second is None and not self._start_due_second(now):
                break
            # The soonest of the due second's sorted keys, skipping entries of items that
            # are gone, expire in another second, or were written since the sort.
            second, keys, position = self.due_second, self.due_bucket, self.due_position
            sorted_item = None
            while position < len(keys):
                sorted_item = items.get(keys[position])
                if (
                    sorted_item is not None
                    and sorted_item.version < self.due_version
                    and int(sorted_item) == second
                ):
                    break
                sorted_item = None
                position += 1
            self.due_position = position
            late = self.late
            while late and items.get(late[0][2]) is not late[0][0]:
                heapq.heappop(late)
            if late and (sorted_item is None or late[0][0] < sorted_item):
                item, _, key = late[0]
                if item > now:
                    self.next_expiry = float(item)
                    break
                heapq.heappop(late)
            elif sorted_item is not None:
                item, key = sorted_item, keys[position]
                if item > now:
                    self.next_expiry = float(item)
                    break
                self.due_position = position + 1
            else:
                # This second is done.
                self.due_second, self.due_bucket, self.due_position = None, [0], 1
                continue
            del items[key]
            size = str_bytes(key) + str_bytes(item.value) + EXPIRING_ITEM_BYTES
            uncounted += size + self.unfile(item)
            if self.policy is not None:
                uncounted += self.policy.forgotten(key, item, size)
            reclaimed += 1
        return reclaimed, uncounted

    def _start_due_second(self, now: float) -> bool:
        """Start reclaiming the soonest second if it has come; False if none has."""
        seconds = self.seconds
        if not seconds or seconds[0] > now:
            self.next_expiry = seconds[0] if seconds else NEVER
            return False
        second = heapq.heappop(seconds)
        bucket = self.buckets.pop(second)
        items = self.items
        # An Item compares as its expiry. Entries of removed items sort first, and so does
        # the count, and the sort is stable: the count stays first.
        bucket.sort(key=lambda key: items.get(key, -1.0))
        self.due_second, self.due_bucket, self.due_position = second, bucket, 1
        self.due_version = next(self.versions)
        return True
