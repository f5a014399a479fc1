"""A hot key expiring under concurrent readers: how often the backend computes it, with
leases and without (README, Stampedes).

`python -m bench` runs this section with the rest; `python -m bench.stampede_bench
[--smoke]` runs it alone. It starts `python -m memflask` (the memory store, the README's
settings) on a free loopback port; READERS threads then read one hot key for the
section's seconds, each round on a key of its own. The value lives TTL seconds and takes
COMPUTE_SECONDS to compute (a sleep: the database behind the cache). Each way of reading:

- get, then set on a miss (what Django's and Flask-Caching's get_or_set do): every
  reader that misses computes;
- Client.get_or_set with a lease: one reader computes, the others wait for its value;
- the same with `stale`: the others get the old value meanwhile instead of waiting.

It reports the computations, the key's expiries (the computations a perfect cache
makes: one at the first miss, one per expiry), and the readers' read latency
(p50/p99/max).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Callable, NamedTuple

from memflask.client import Client

from .http_bench import free_port
from .report import p99, print_table
from .shard_bench import start, stop, wait_until_serving

READERS = 16
TTL = 1
COMPUTE_SECONDS = 0.05
STALE_SECONDS = 5
WAYS = ("get, then set on a miss", "get_or_set, lease", "get_or_set, lease and stale")


class StampedeResult(NamedTuple):
    computations: dict[str, list[int]]  # way -> per round
    expiries: dict[str, list[int]]  # way -> per round: the perfect cache's computations
    latency_ms: dict[str, tuple[float, float, float]]  # way -> p50, p99, max over rounds


def read_hot_key(url: str, way: str, key: str, seconds: float) -> tuple[int, int, list[float]]:
    """READERS threads reading `key` for `seconds`: the computations, the expiries, and
    every read's latency in ms."""
    computed = [0]
    lock = threading.Lock()

    def compute() -> str:
        with lock:
            computed[0] += 1
        time.sleep(COMPUTE_SECONDS)
        return f"value computed at {time.time():.3f}"

    readers: dict[str, Callable[[Client], object]] = {
        WAYS[0]: lambda client: client.get(key) or client.set(key, compute(), expire=TTL),
        WAYS[1]: lambda client: client.get_or_set(key, compute, expire=TTL),
        WAYS[2]: lambda client: client.get_or_set(key, compute, expire=TTL, stale=STALE_SECONDS),
    }
    read = readers[way]
    latencies: list[float] = []
    with Client(url, max_connections=READERS, timeout=10) as client:
        deadline = time.monotonic() + seconds
        started = time.monotonic()

        def reader() -> None:
            mine = []
            while time.monotonic() < deadline:
                began = time.perf_counter()
                read(client)
                mine.append((time.perf_counter() - began) * 1000)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=reader) for _ in range(READERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    return computed[0], perfect_computations(elapsed), latencies


def perfect_computations(elapsed: float) -> int:
    """What a perfect cache computes in `elapsed` seconds: once at the first miss, then
    once each time the value (living TTL seconds from its write) expires."""
    return 1 + int(elapsed // (TTL + COMPUTE_SECONDS))


def measure_stampede(seconds: float, rounds: int) -> StampedeResult:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(port)
    computations: dict[str, list[int]] = {way: [] for way in WAYS}
    expiries: dict[str, list[int]] = {way: [] for way in WAYS}
    latencies: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        wait_until_serving(url)
        for round_number in range(rounds):
            order = WAYS[round_number % 3 :] + WAYS[: round_number % 3]
            for way in order:
                key = f"hot:{WAYS.index(way)}:{round_number}"
                computed, expired, timings = read_hot_key(url, way, key, seconds)
                computations[way].append(computed)
                expiries[way].append(expired)
                latencies[way].extend(timings)
    finally:
        stop([process])
    return StampedeResult(
        computations,
        expiries,
        {way: percentiles(values) for way, values in latencies.items()},
    )


def percentiles(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), p99(values), max(values)


def print_section(result: StampedeResult) -> None:
    print(
        f"A hot key expiring under {READERS} readers (TTL {TTL} s, computed in "
        f"{COMPUTE_SECONDS * 1000:.0f} ms; one process, the memory store): computations "
        "of the value, summed over the rounds\n"
    )
    rows = [("way", "computations", "expiries", "per expiry", "read p50/p99/max")]
    for way in WAYS:
        computed, expired = sum(result.computations[way]), sum(result.expiries[way])
        p50, p99, most = result.latency_ms[way]
        rows.append(
            (
                way,
                f"{computed:,}",
                f"{expired:,}",
                f"{computed / expired:.2f}",
                f"{p50:.2f}/{p99:.1f}/{most:.0f} ms",
            )
        )
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stampede_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="two seconds per way (CI)")
    options = parser.parse_args()
    print_section(measure_stampede(2.0 if options.smoke else 10.0, 1 if options.smoke else 3))


if __name__ == "__main__":
    main()
