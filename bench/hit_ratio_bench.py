"""Hit ratios: the same request sequences through memflask's store and through
libCacheSim's eviction algorithms at the same capacity (issue "hit ratio beyond plain
LRU": the baseline its policy is chosen by).

`python -m bench` runs this section with the rest; `python -m bench.hit_ratio_bench
[--smoke]` runs it alone. Each workload is a Zipf(alpha) sequence over OBJECTS objects
(libCacheSim's own generator, a fixed seed), REQUESTS_PER_OBJECT requests an object,
optionally with one-time scans: SCANS runs of never-seen objects, each as many as the
cache holds, at even intervals (a batch job, a crawler). A cache of 1% and 10% of the
objects, counted in objects. memflask's store replays it through the API the commands
use: `get`, and on a miss a write (set-on-miss), SIZE as its capacity. No trace file is
kept: the sequences are made at each run.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import NamedTuple, Optional

from memflask.store import Item, MemoryStore

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
    share: float  # the cache's size, as a share of the objects
    scans: bool

    @property
    def name(self) -> str:
        scans = ", scans" if self.scans else ""
        return f"Zipf {self.alpha:g}, cache {self.share:.0%}{scans}"


class Measured(NamedTuple):
    hit_ratios: dict[str, dict[str, float]]  # workload name -> algorithm -> hit ratio
    memflask_ops_per_second: dict[str, float]  # workload name -> store ops/s


def workloads() -> list[Workload]:
    return [
        Workload(alpha, share, scans)
        for scans in (False, True)
        for alpha in ALPHAS
        for share in CACHE_SHARES
    ]


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
    capacity = cache_size(workload, objects)
    step = len(ids) // (SCANS + 1)
    with_scans: list[int] = []
    fresh = objects * 10  # ids no Zipf request names
    for number in range(SCANS + 1):
        with_scans += ids[number * step : (number + 1) * step]
        if number < SCANS:
            with_scans += range(fresh, fresh + capacity)
            fresh += capacity
    return with_scans


def cache_size(workload: Workload, objects: int) -> int:
    return max(1, int(objects * workload.share))


def memflask_hit_ratio(ids: list[int], capacity: int) -> tuple[float, float]:
    """memflask's store, SIZE `capacity`: get, and set on a miss. (hit ratio, ops/s)."""
    store = MemoryStore(max_keys=capacity, max_bytes=0)
    get, update = store.get, store.update

    def fill(current: object, now: float) -> Item:
        return Item("v")

    hits = 0
    started = time.perf_counter()
    for number in ids:
        key = str(number)
        if get(key) is None:
            update(key, fill)
        else:
            hits += 1
    seconds = time.perf_counter() - started
    misses = len(ids) - hits
    return hits / len(ids), (len(ids) + misses) / seconds


def reference_hit_ratio(name: str, ids: list[int], capacity: int) -> float:
    """libCacheSim's `name` algorithm, `capacity` objects of size 1."""
    import libcachesim

    cache = getattr(libcachesim, name)(cache_size=capacity)
    request = libcachesim.Request()
    request.obj_size = 1
    hits = 0
    for number in ids:
        request.obj_id = number
        hits += bool(cache.get(request))
    return hits / len(ids)


def available() -> bool:
    """Whether libCacheSim is installed (bench/requirements.txt, CPython 3.11 and later)."""
    return importlib.util.find_spec("libcachesim") is not None


def measure_hit_ratios(objects: int) -> Optional[Measured]:
    """The table's figures; None without libCacheSim."""
    if not available():
        return None
    ratios: dict[str, dict[str, float]] = {}
    speeds: dict[str, float] = {}
    for workload in workloads():
        ids = sequence(workload, objects)
        capacity = cache_size(workload, objects)
        ratio, speed = memflask_hit_ratio(ids, capacity)
        ratios[workload.name] = {"memflask": ratio}
        speeds[workload.name] = speed
        for name in REFERENCES:
            ratios[workload.name][name] = reference_hit_ratio(name, ids, capacity)
    return Measured(ratios, speeds)


def print_section(result: Optional[Measured], objects: int) -> None:
    if result is None:
        print("Hit ratios: skipped, libCacheSim is not installed (bench/requirements.txt)")
        return
    print(
        f"Hit ratios (%): Zipf sequences over {objects:,} objects, {REQUESTS_PER_OBJECT} "
        f"requests an object, set on a miss; with scans: {SCANS} one-time scans of as many "
        "new objects as the cache holds. memflask's store (plain LRU) beside libCacheSim's "
        "algorithms at the same capacity in objects\n"
    )
    header = ("workload", "memflask", *REFERENCES, "best - memflask", "memflask ops/s")
    rows = [header]
    for name, ratios in result.hit_ratios.items():
        best = max(ratios[reference] for reference in REFERENCES)
        rows.append(
            (
                name,
                *(f"{100 * ratios[algorithm]:.2f}" for algorithm in ("memflask", *REFERENCES)),
                f"{100 * (best - ratios['memflask']):+.2f}",
                f"{result.memflask_ops_per_second[name]:,.0f}",
            )
        )
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hit_ratio_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="10,000 objects (CI)")
    options = parser.parse_args()
    objects = 10_000 if options.smoke else OBJECTS
    print_section(measure_hit_ratios(objects), objects)


if __name__ == "__main__":
    main()
