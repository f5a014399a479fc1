"""The memory store's clocks: a relative ttl runs by the monotonic clock, whatever the
wall clock does, and TtlItems' instants follow the wall clock's steps."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Optional

from .base import NEVER, WALL_STEP_SECONDS, Item, TtlItem
from .expiry_index import ExpiryIndex


class MemoryClock:
    """A MemoryStore's following of wall-clock steps. The store holds the attributes
    below, and gives `_make_room` (called with the lock held)."""

    _items: OrderedDict[str, Item]
    _injected_monotonic: Optional[Callable[[], float]]
    _wall_offset: Optional[float]
    _index: ExpiryIndex
    _bytes: int
    _changes: int
    _make_room: Callable[[float], None]

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
            replacement.uses = item.uses
        self._bytes += self._index.rebuild()  # items moved to other seconds
        self._make_room(now)  # the seconds' buckets may have grown past MAX_BYTES
        self._changes += 1
        return True

    def _start_following_wall_steps(self, now: float) -> None:
        """Note wall minus monotonic time now: the first TtlItem is being stored."""
        self._wall_offset = now - self._monotonic()
