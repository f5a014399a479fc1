"""Hit ratios: the same request sequences through memflask's store, under each of its
eviction policies, and through libCacheSim's eviction algorithms at the same capacity.

`python -m bench` runs this section with the rest; `python -m bench.hit_ratio_bench
[--smoke]` runs it alone. Each workload is a Zipf(alpha) sequence over OBJECTS objects
(libCacheSim's own generator, a fixed seed), REQUESTS_PER_OBJECT requests an object,
optionally with one-time scans: SCANS runs of never-seen objects, each as many as the
cache holds, at even intervals (a batch job, a crawler). A cache of 1% and 10% of the
objects, counted in objects; and a Zipf 1 workload whose objects' sizes vary (16 B to
64 KiB, a log-normal spread) in a cache of 1% and 10% of their bytes. memflask's store
replays each through the API the commands use: `get`, and on a miss a write
(set-on-miss), SIZE (or MAX_BYTES) as its capacity; libCacheSim's objects are given the
sizes memflask counts for them. No trace file is kept: the sequences are made at each run.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import random
import time
from typing import NamedTuple, Optional

from memflask.store import EVICTION_POLICIES, ITEM_BYTES, Item, MemoryStore, str_bytes

from .fresh_process import child_result, rss_bytes
from .report import print_table

ALPHAS = (0.8, 1.0, 1.2)
CACHE_SHARES = (0.01, 0.10)
OBJECTS = 1_000_000
REQUESTS_PER_OBJECT = 2
SCANS = 3
SEED = 42
# libCacheSim's algorithms, by the name the table gives them.
REFERENCES = ("LRU", "S3FIFO", "WTinyLFU", "Sieve", "ARC")


class Workload(NamedTuple):
    alpha: float
    share: float  # the cache's size, as a share of the objects (or of their bytes)
    scans: bool
    sized: bool = False  # objects of varying sizes in a byte capacity (MAX_BYTES)

    @property
    def name(self) -> str:
        scans = ", scans" if self.scans else ""
        what = "bytes" if self.sized else "cache"
        sizes = ", sizes vary" if self.sized else ""
        return f"Zipf {self.alpha:g}{sizes}, {what} {self.share:.0%}{scans}"


class Run(NamedTuple):
    hit_ratio: float
    ops_per_second: float  # store calls: each get, and each write on a miss


class Measured(NamedTuple):
    hit_ratios: dict[str, dict[str, float]]  # workload name -> algorithm -> hit ratio
    speeds: dict[str, dict[str, float]]  # workload name -> memflask policy -> store ops/s
    bytes_per_item: dict[str, float]  # memflask policy -> RSS per item held


def workloads() -> list[Workload]:
    counted = [
        Workload(alpha, share, scans)
        for scans in (False, True)
        for alpha in ALPHAS
        for share in CACHE_SHARES
    ]
    return counted + [
        Workload(1.0, share, scans, sized=True) for scans in (False, True) for share in CACHE_SHARES
    ]


# The sized workloads' value lengths, taken by object id: a seeded log-normal spread
# (median about 400 bytes), 16 bytes to 64 KiB.
_LENGTHS = random.Random(SEED)
VALUE_LENGTHS = [
    min(64 * 1024, max(16, int(_LENGTHS.lognormvariate(6, 1.5)))) for _ in range(65_536)
]


def value_length(number: int) -> int:
    return VALUE_LENGTHS[number % len(VALUE_LENGTHS)]


def object_bytes(number: int) -> int:
    """What memflask counts for object `number` in the sized workloads (key and value)."""
    return str_bytes(str(number)) + str_bytes("") + value_length(number) + ITEM_BYTES


def sequence(workload: Workload, objects: int) -> list[int]:
    """The workload's object ids, in order: Zipf requests, and its scans among them."""
    import libcachesim

    requests = objects * REQUESTS_PER_OBJECT
    generator = libcachesim.create_zipf_requests(
        objects, requests, alpha=workload.alpha, obj_size=1, seed=SEED
    )
    ids = [request.obj_id for request in generator]
    if not workload.scans:
        return ids
    scan_length = cache_objects(workload, objects)
    step = len(ids) // (SCANS + 1)
    with_scans: list[int] = []
    fresh = objects * 10  # ids no Zipf request names
    for number in range(SCANS + 1):
        with_scans += ids[number * step : (number + 1) * step]
        if number < SCANS:
            with_scans += range(fresh, fresh + scan_length)
            fresh += scan_length
    return with_scans


def cache_objects(workload: Workload, objects: int) -> int:
    """About as many objects as the cache holds."""
    return max(1, int(objects * workload.share))


def capacity(workload: Workload, objects: int) -> int:
    """The cache's capacity: in objects, or for sized workloads in bytes."""
    if not workload.sized:
        return cache_objects(workload, objects)
    return int(workload.share * sum(object_bytes(number) for number in range(objects)))


def memflask_run(workload: Workload, ids: list[int], capacity: int, eviction: str) -> Run:
    """memflask's store under `eviction`, SIZE (or MAX_BYTES) `capacity`: get, and set on a
    miss."""
    if workload.sized:
        store = MemoryStore(max_bytes=capacity, eviction=eviction)
    else:
        store = MemoryStore(max_keys=capacity, max_bytes=0, eviction=eviction)
    get, update = store.get, store.update
    sized = workload.sized

    hits = 0
    started = time.perf_counter()
    for number in ids:
        key = str(number)
        if get(key) is not None:
            hits += 1
        else:
            item = Item("x" * value_length(number) if sized else "v")
            update(key, lambda current, now, item=item: item)
    seconds = time.perf_counter() - started
    misses = len(ids) - hits
    return Run(hits / len(ids), (len(ids) + misses) / seconds)


def reference_hit_ratio(name: str, workload: Workload, ids: list[int], capacity: int) -> float:
    """libCacheSim's `name` algorithm at `capacity`, objects sized as memflask counts them
    (size 1 in the workloads counted in objects)."""
    import libcachesim

    cache = getattr(libcachesim, name)(cache_size=capacity)
    request = libcachesim.Request()
    request.obj_size = 1
    hits = 0
    for number in ids:
        request.obj_id = number
        if workload.sized:
            request.obj_size = object_bytes(number)
        hits += bool(cache.get(request))
    return hits / len(ids)


def bytes_per_item(eviction: str, objects: int) -> float:
    """In a fresh process: RSS growth per item held, beyond its key and value strings, of a
    store at 10% of the objects after the Zipf 1 sequence with scans."""
    measured = child_result("bench.hit_ratio_bench", "--memory", eviction, str(objects))
    return measured["bytes_per_item"]


def _memory_child(eviction: str, objects: int) -> None:
    workload = Workload(1.0, 0.1, scans=True)
    ids = sequence(workload, objects)
    gc.collect()
    before = rss_bytes()
    store = MemoryStore(max_keys=cache_objects(workload, objects), max_bytes=0, eviction=eviction)
    for number in ids:
        key = str(number)  # made afresh, as a server parsing requests does
        if store.get(key) is None:
            store.update(key, lambda current, now: Item("v"))
    gc.collect()
    held = store.export()
    strings = sum(str_bytes(key) + str_bytes(value) for key, value, _ in held)
    print(json.dumps({"bytes_per_item": (rss_bytes() - before - strings) / len(held)}))


def available() -> bool:
    """Whether libCacheSim is installed (bench/requirements.txt, CPython 3.11 and later)."""
    return importlib.util.find_spec("libcachesim") is not None


def measure_hit_ratios(objects: int) -> Optional[Measured]:
    """The table's figures; None without libCacheSim."""
    if not available():
        return None
    ratios: dict[str, dict[str, float]] = {}
    speeds: dict[str, dict[str, float]] = {}
    for workload in workloads():
        ids = sequence(workload, objects)
        size = capacity(workload, objects)
        runs = {
            eviction: memflask_run(workload, ids, size, eviction) for eviction in EVICTION_POLICIES
        }
        ratios[workload.name] = {eviction: run.hit_ratio for eviction, run in runs.items()}
        speeds[workload.name] = {eviction: run.ops_per_second for eviction, run in runs.items()}
        for name in REFERENCES:
            ratios[workload.name][name] = reference_hit_ratio(name, workload, ids, size)
    memory = {eviction: bytes_per_item(eviction, objects) for eviction in EVICTION_POLICIES}
    return Measured(ratios, speeds, memory)


def print_section(result: Optional[Measured], objects: int) -> None:
    if result is None:
        print("Hit ratios: skipped, libCacheSim is not installed (bench/requirements.txt)")
        return
    print(
        f"Hit ratios (%): Zipf sequences over {objects:,} objects, {REQUESTS_PER_OBJECT} "
        f"requests an object, set on a miss; with scans: {SCANS} one-time scans of as many "
        "new objects as the cache holds. memflask's store under each EVICTION policy beside "
        "libCacheSim's algorithms at the same capacity (in objects; for sizes that vary, in "
        "bytes); store ops/s: gets and sets a second, in-process\n"
    )
    header = (
        "workload",
        *(f"memflask {eviction}" for eviction in EVICTION_POLICIES),
        *REFERENCES,
        "best - s3fifo",
        "s3fifo - lru",
        "ops/s lru",
        "ops/s s3fifo",
        "s3fifo / lru",
    )
    rows = [header]
    for name, ratios in result.hit_ratios.items():
        best = max(ratios[reference] for reference in REFERENCES)
        speeds = result.speeds[name]
        rows.append(
            (
                name,
                *(f"{100 * ratios[column]:.2f}" for column in (*EVICTION_POLICIES, *REFERENCES)),
                f"{100 * (best - ratios['s3fifo']):+.2f}",
                f"{100 * (ratios['s3fifo'] - ratios['lru']):+.2f}",
                f"{speeds['lru']:,.0f}",
                f"{speeds['s3fifo']:,.0f}",
                f"{speeds['s3fifo'] / speeds['lru']:.2f}",
            )
        )
    print_table(rows)
    memory = result.bytes_per_item
    print(
        f"\nBytes per item held (RSS, beyond its key and value; Zipf 1, cache 10%, scans): "
        f"lru {memory['lru']:.0f}, s3fifo {memory['s3fifo']:.0f} "
        f"({memory['s3fifo'] / memory['lru']:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hit_ratio_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="10,000 objects (CI)")
    parser.add_argument(
        "--memory", nargs=2, metavar=("EVICTION", "OBJECTS"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.memory:
        _memory_child(options.memory[0], int(options.memory[1]))
        return
    objects = 10_000 if options.smoke else OBJECTS
    print_section(measure_hit_ratios(objects), objects)


if __name__ == "__main__":
    main()
