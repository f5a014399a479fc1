"""The memory store's eviction policies: `lru`, the items' own recency order (the
original's), and `s3fifo`, scan-resistant, written here. bench/hit_ratio_bench.py
measures both beside libCacheSim's algorithms; README "Eviction" says how they behave."""

from __future__ import annotations

from array import array
from collections import OrderedDict, deque
from typing import Optional

from .base import Item, item_bytes

LRU, S3FIFO = "lru", "s3fifo"
EVICTION_POLICIES = (LRU, S3FIFO)

# The ghost table's first size, in slots (8 bytes each): it grows with the items held.
GHOST_FIRST_SLOTS = 8
# What s3fifo holds for each item besides the store's own per-item overhead: its slot in
# the small queue's deque and its share of the ghost table (one or two 8-byte slots),
# counted against MAX_BYTES on top of ITEM_BYTES. Measured as ITEM_BYTES is: the RSS
# growth per item of s3fifo stores less lru's, 11 to 33 bytes on CPython 3.10 and 3.11
# (tests/store/test_memory_cap.py checks it).
POLICY_ITEM_BYTES = 24

# Item.uses under s3fifo: a main-queue item's count of reads, 0 to 3; a small-queue
# item's is SMALL plus its count, 0 to PROMOTE_AT (what happens past that is the same).
SMALL = 4
# Reads in the small queue that move an item on to the main queue: one, as the paper has
# it ("accessed at least once") and as libcachesim 0.3.5's S3FIFO behaves (threshold 2,
# counting as libCacheSim's source reads, fell 0.2 to 0.9 points short of it).
PROMOTE_AT = 1
PROMOTED = SMALL + PROMOTE_AT  # the uses of a small-queue item read that often
# uses after a read, by uses before it: counts stop at 3 (main) and PROMOTE_AT (small).
READ = (1, 2, 3, 3, SMALL + 1, SMALL + 1)


class S3Fifo:
    """S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023),
    as libCacheSim's S3FIFO runs it, over a MemoryStore's items.

    A new item enters the small queue, a tenth of the cache. When it reaches that queue's
    end, an item read since it came moves on to the main queue; any other is
    evicted, and its key remembered in the ghost table, so that the key, written again
    soon, enters the main queue directly. The main queue is a FIFO with reinsertion: an
    item read since it was last passed goes around again, its count of reads (at most 3)
    one lower; one unread is evicted. So keys read once (a scan, a batch job) pass through
    the small queue without pushing out the keys read often.

    Both queues are orders within the store's one OrderedDict of items, so every read
    finds an item where it always did: new, promoted and reinserted items go to its end.
    Which queue an item is in, and its count of reads, are its `uses` (see SMALL); the
    small queue's order is a deque of keys beside the items, and the main queue is the
    items' order with the small queue's items left out. A read hit moves nothing: it
    counts a read on the item, and a rewrite counts as one too.

    The ghost table holds the 64-bit hashes of the keys, direct-mapped: 8 bytes a slot,
    no key kept (the S3-FIFO paper's own implementations keep hashes too), a slot for
    each item held at least (a power of two; grown, starting empty, as the cache holds
    more). A key evicted later pushes out whichever key shared its slot, so a key is
    remembered for about as many evictions as the table has slots, where libCacheSim's
    ghost, a FIFO of 90% of the cache's objects, remembers exactly that many (on the
    bench's workloads, tables of half and twice the size gave hit ratios within 0.7
    points, an exact FIFO within 0.3). A false match only lets a key skip the small
    queue. Python's str hashes vary from process to process, and so do the collisions:
    the same requests give hit ratios a few hundredths of a point apart.

    The item just written is never the one its own write evicts (libCacheSim evicts
    before it inserts). The store's lock guards the policy. What it holds beside the
    items is counted as POLICY_ITEM_BYTES an item: `admit` and `forgotten` return it,
    for the store to add to its count.
    """

    SMALL_SHARE = 0.1  # of the cache's keys, or of its bytes when MAX_BYTES is what is over
    # Items one eviction may move along in each queue (promote, or send round) before it
    # evicts the item then at the end of the queue whatever its reads: libCacheSim's
    # S3FIFO has no such bound, and after a long run of hits one eviction could move
    # every item three times over (three million moves for a million keys) with the lock
    # held.
    MAX_MOVES = 1024

    def __init__(self, items: OrderedDict[str, Item], max_keys: int, max_bytes: int):
        self.items = items
        self.main_keys = max_keys * (1 - self.SMALL_SHARE)  # the main queue's share
        self.main_bytes = max_bytes * (1 - self.SMALL_SHARE)
        self.clear()

    def clear(self) -> None:
        """Forget the queues and the ghost table (the store was flushed, or is new)."""
        # The small queue's keys, oldest first; and its dead entries: the entries of items
        # that left it without coming to its front (deleted, expired, evicted from the main
        # queue's loop), by key. A key's dead entries come before its live one, so an
        # entry is skipped while its key has dead ones; a key written again in the
        # meantime keeps its new place.
        self.small: deque[str] = deque()
        self.dead: dict[str, int] = {}
        self.dead_entries = 0
        self.taken: Optional[str] = None  # the small-queue victim, its entry already gone
        self.small_keys = 0  # the small queue's items
        self.small_bytes = 0  # the same, as MAX_BYTES counts them
        self.ghost = array("q", bytes(8 * GHOST_FIRST_SLOTS))
        self.ghost_mask = GHOST_FIRST_SLOTS - 1
        self.ghost_outgrown = GHOST_FIRST_SLOTS  # items held past which it grows
        self.written: Optional[str] = None  # the key last written: never the victim

    def touch(self, key: str) -> None:
        """A read hit: count it."""
        item = self.items[key]
        item.uses = READ[item.uses]

    def admit(self, key: str, item: Item, size: int) -> int:
        """A new item, just stored under `key` (at the items' end), of `size` bytes; the
        bytes the policy counts for it."""
        self.written = key
        if len(self.items) > self.ghost_outgrown:
            self._grow_ghost()
        code = hash(key)
        if self.ghost[code & self.ghost_mask] == code:
            self.ghost[code & self.ghost_mask] = 0
            return POLICY_ITEM_BYTES  # into the main queue: where it stands, uses 0
        item.uses = SMALL
        self.small.append(key)
        self.small_keys += 1
        self.small_bytes += size + POLICY_ITEM_BYTES
        return POLICY_ITEM_BYTES

    def rewritten(self, key: str, item: Item, current: Item, grown: int) -> None:
        """`item` replaced `current` in its place, `grown` bytes larger: a read too."""
        self.written = key
        item.uses = READ[current.uses]
        if current.uses >= SMALL:
            self.small_bytes += grown

    def forgotten(self, key: str, item: Item, size: int) -> int:
        """`item` under `key`, of `size` bytes, left the items (deleted, expired, evicted);
        the bytes the policy no longer counts for it."""
        if item.uses >= SMALL:
            self.small_keys -= 1
            self.small_bytes -= size + POLICY_ITEM_BYTES
            if key == self.taken:
                self.taken = None
                return POLICY_ITEM_BYTES
            self.dead[key] = self.dead.get(key, 0) + 1
            self.dead_entries += 1
            # Dead entries keep their keys alive, uncounted: a quarter of the queue at most.
            if self.dead_entries > self.small_keys // 4 + 64:
                self._compact()
        return POLICY_ITEM_BYTES

    def victim(self, over_keys: bool, counted_bytes: int) -> str:
        """The key to evict now: from the main queue if it holds more than its share (by
        keys if SIZE is what is over, else by bytes) or the small queue is empty, else
        from the small queue, its key remembered in the ghost table. Items passed on the
        way move along: promoted from the small queue, or around the main one."""
        items = self.items
        if over_keys:
            main_over = len(items) - self.small_keys > self.main_keys
        else:
            main_over = counted_bytes - self.small_bytes > self.main_bytes
        if not main_over and self.small:
            key = self._small_victim(self.MAX_MOVES)
            if key is not None:
                return key
        written = self.written
        moves = skips = self.MAX_MOVES
        while skips > 0 and len(items) > 1:
            key = next(iter(items))
            item = items[key]
            uses = item.uses
            if uses >= SMALL or key == written:
                # Out of the main queue's way, not one of its moves: each small-queue item
                # is passed so once a round of the main queue at most.
                items.move_to_end(key)
                skips -= 1
                continue
            if not uses or moves <= 0:
                return key
            item.uses = uses - 1
            items.move_to_end(key)
            moves -= 1
        # MAX_MOVES small-queue items passed (the main queue's end lies beyond them), or
        # the main queue holds no item but the one just written: the small queue's first
        # goes, read or not (libCacheSim, evicting before it inserts, would find the main
        # queue empty).
        key = self._small_victim(0)
        return next(iter(items)) if key is None else key

    def _small_victim(self, moves: int) -> Optional[str]:
        """The small queue's first item not read since it came (or any, after `moves`
        promotions), remembered in the ghost table; the read ones before it move on to
        the main queue. None if it has no such item (all moved on, or only the item just
        written, set aside and put back)."""
        items, small, dead, written = self.items, self.small, self.dead, self.written
        held = None
        try:
            while small:
                key = small.popleft()
                if dead and key in dead:
                    self.dead_entries -= 1
                    if dead[key] == 1:
                        del dead[key]
                    else:
                        dead[key] -= 1
                    continue
                if key == written:
                    held = key
                    continue
                item = items[key]
                if item.uses < PROMOTED or not moves:
                    code = hash(key)
                    self.ghost[code & self.ghost_mask] = code
                    self.taken = key  # forgotten() counts it out of the small queue
                    return key
                item.uses = 0
                self.small_keys -= 1
                self.small_bytes -= item_bytes(key, item.value, item.expires_at)
                self.small_bytes -= POLICY_ITEM_BYTES
                items.move_to_end(key)
                moves -= 1
            return None
        finally:
            if held is not None:
                small.appendleft(held)

    def _grow_ghost(self) -> None:
        """Grow the ghost table (empty) to a slot for every item held at least."""
        slots = 1 << (len(self.items) - 1).bit_length()
        self.ghost = array("q", bytes(8 * slots))
        self.ghost_mask = slots - 1
        self.ghost_outgrown = slots

    def _compact(self) -> None:
        """Drop the small queue's dead entries: each key's last entry is its live one."""
        items, kept, seen = self.items, [], set()
        for key in reversed(self.small):
            item = items.get(key)
            if item is not None and item.uses >= SMALL and key not in seen:
                seen.add(key)
                kept.append(key)
        kept.reverse()
        self.small = deque(kept)
        self.dead.clear()
        self.dead_entries = 0
