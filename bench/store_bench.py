"""Store figures: memflask's MemoryStore beside cachetools.TTLCache and an OrderedDict LRU.

Each structure sits behind a lock, as a threaded server needs. The mix is 75% get and
25% set with a TTL, on uniformly random keys; memory per item is measured in a fresh
process per structure (RSS growth over 10^6 items, keys and values allocated first).
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import threading
import time
from collections import OrderedDict
from typing import Callable

import cachetools

from memflask.store import Item, MemoryStore

from .fresh_process import child_result, rss_bytes

TTL_SECONDS = 300
VALUE = "v" * 16


class Structure:
    """A cache under test: `get(key)` and `set(key, value)` for a store of `size` keys."""

    name = ""

    def __init__(self, size: int):
        self.size = size

    def get(self, key: str) -> object:
        raise NotImplementedError

    def set(self, key: str, value: str) -> None:
        raise NotImplementedError


class MemflaskStore(Structure):
    """memflask's store through the API its commands use: get, and update with a change."""

    name = "memflask MemoryStore"

    def __init__(self, size: int):
        super().__init__(size)
        self.store = MemoryStore(max_keys=size, max_bytes=0)

    def get(self, key: str) -> object:
        return self.store.get(key)

    def set(self, key: str, value: str) -> None:
        self.store.update(key, lambda current, now: Item(value, now + TTL_SECONDS))


class LockedTTLCache(Structure):
    name = "cachetools.TTLCache + lock"

    def __init__(self, size: int):
        super().__init__(size)
        self.cache = cachetools.TTLCache(maxsize=size, ttl=TTL_SECONDS)
        self.lock = threading.Lock()

    def get(self, key: str) -> object:
        with self.lock:
            return self.cache.get(key)

    def set(self, key: str, value: str) -> None:
        with self.lock:
            self.cache[key] = value


class LockedOrderedDict(Structure):
    """The least an LRU can do: no expiry, no byte count, no statistics."""

    name = "OrderedDict LRU + lock"

    def __init__(self, size: int):
        super().__init__(size)
        self.items: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> object:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def set(self, key: str, value: str) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            if len(self.items) > self.size:
                self.items.popitem(last=False)


STRUCTURES: dict[str, Callable[[int], Structure]] = {
    "memflask": MemflaskStore,
    "ttlcache": LockedTTLCache,
    "ordereddict": LockedOrderedDict,
}


def mix_ops_per_second(kind: str, size: int, operations: int, seed: int) -> float:
    structure = STRUCTURES[kind](size)
    keys = [f"key:{number}" for number in range(size)]
    for key in keys:
        structure.set(key, VALUE)
    rng = random.Random(seed)
    plan = [(keys[rng.randrange(size)], rng.random() < 0.75) for _ in range(operations)]
    get, set_ = structure.get, structure.set
    gc.collect()
    started = time.perf_counter()
    for key, is_get in plan:
        if is_get:
            get(key)
        else:
            set_(key, VALUE)
    return operations / (time.perf_counter() - started)


def measure_mix(
    sizes: tuple[int, ...], operations: int, rounds: int
) -> dict[tuple[str, int], float]:
    """Median ops/s per structure and size; structures interleaved in every round."""
    runs: dict[tuple[str, int], list[float]] = {}
    for round_number in range(rounds):
        for size in sizes:
            for kind in STRUCTURES:
                ops = mix_ops_per_second(kind, size, operations, seed=round_number)
                runs.setdefault((kind, size), []).append(ops)
    return {key: statistics.median(values) for key, values in runs.items()}


def bytes_per_item(kind: str, count: int) -> float:
    """Run in a fresh process: RSS growth per item for `count` items (keys made first)."""
    return child_result("bench.store_bench", kind, str(count))["bytes_per_item"]


def _memory_child(kind: str, count: int) -> None:
    keys = [f"key:{number}" for number in range(count)]
    values = [f"value:{number}" for number in range(count)]
    structure = STRUCTURES[kind](count)
    gc.collect()
    before = rss_bytes()
    for key, value in zip(keys, values):
        structure.set(key, value)
    gc.collect()
    print(json.dumps({"bytes_per_item": (rss_bytes() - before) / count}))


if __name__ == "__main__":
    _memory_child(sys.argv[1], int(sys.argv[2]))
