"""Several memory-store processes behind the sharded client (README, Several servers).

`python -m bench` runs this section with the rest; `python -m bench.shard_bench
[--smoke]` runs it alone. It starts four `python -m memflask` processes (the memory
store, the README's settings) on free loopback ports and measures, through one
memflask.client.Client given the first 1, 2 or 4 of them:

- ops/s: CLIENT_THREADS threads sharing the client, 75% get / 25% set of random keys,
  for the section's seconds, rounds interleaved (medians). On a 2-core machine the
  client's own threads and the servers share the cores: the figure is bounded by them,
  not by the number of processes;
- key balance: the keys each of 4 processes holds after KEYS sets, max / mean;
- keys moved: of KEYS keys placed on 3 processes, those a 4th takes;
- a live key's get while one of 4 processes is stopped and set aside: median and p99
  over LIVE_READS gets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from memflask.client import Client, MemflaskConnectionError
from memflask.placement import server_for

from .http_bench import free_port
from .report import p99, print_table

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = (1, 2, 4)
CLIENT_THREADS = 4
KEYS = 10_000
LIVE_READS = 200


class ShardResult(NamedTuple):
    ops_per_second: dict[int, float]  # processes -> median ops/s
    balance: float  # max / mean keys held, 4 processes
    moved: float  # share of keys a 4th process takes from 3
    live_get_ms: tuple[float, float]  # median, p99 of a live key's get, one process down


def start(port: int) -> subprocess.Popen:
    environment = {**os.environ, "MEMFLASK_PORT": str(port), "APP_ENV": "production"}
    return subprocess.Popen(
        [sys.executable, "-m", "memflask"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process still running, then wait for them all."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 30
    with Client(url, timeout=1) as client:
        while True:
            try:
                client.stats()
                return
            except MemflaskConnectionError:
                assert time.monotonic() < deadline, f"{url} did not start"
                time.sleep(0.05)


def ops_per_second(urls: list[str], seconds: float) -> float:
    keys = [f"key:{number}" for number in range(KEYS)]
    done = [0] * CLIENT_THREADS
    with Client(urls) as client:
        client.set_many({key: "v" * 16 for key in keys[:1000]})
        deadline = time.monotonic() + seconds

        def work(thread: int) -> None:
            rng = random.Random(thread)
            while time.monotonic() < deadline:
                key = keys[rng.randrange(len(keys))]
                if rng.random() < 0.75:
                    client.get(key)
                else:
                    client.set(key, "v" * 16)
                done[thread] += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(CLIENT_THREADS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done) / (time.monotonic() - started)


def measure_shards(seconds: float, rounds: int) -> ShardResult:
    ports = [free_port() for _ in range(4)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    processes = [start(port) for port in ports]
    try:
        for url in urls:
            wait_until_serving(url)
        runs: dict[int, list[float]] = {count: [] for count in PROCESSES}
        for round_number in range(rounds):
            order = PROCESSES[round_number % 3 :] + PROCESSES[: round_number % 3]
            for count in order:
                runs[count].append(ops_per_second(urls[:count], seconds))
        keys = [f"balance:{number}" for number in range(KEYS)]
        with Client(urls) as client:
            client.flush_all()
            for begin in range(0, KEYS, 1000):
                client.set_many({key: "v" for key in keys[begin : begin + 1000]})
            held = [server["keyCount"] for server in client.stats()["servers"].values()]
        moved = sum(server_for(k, urls[:3]) != server_for(k, urls) for k in keys) / KEYS
        live_get_ms = live_gets(urls, processes)
    finally:
        stop(processes)
    return ShardResult(
        {count: statistics.median(values) for count, values in runs.items()},
        max(held) / statistics.mean(held),
        moved,
        live_get_ms,
    )


def live_gets(urls: list[str], processes: list[subprocess.Popen]) -> tuple[float, float]:
    """A live key's get, in ms, once the last process is stopped and set aside."""
    processes[-1].send_signal(signal.SIGTERM)
    processes[-1].wait(timeout=30)
    with Client(urls, timeout=2, dead_after=1) as client:
        dead_key = next(f"d{n}" for n in range(1000) if server_for(f"d{n}", urls) == urls[-1])
        with contextlib.suppress(MemflaskConnectionError):
            client.get(dead_key)  # refused: the process is set aside
        live = [f"l{n}" for n in range(5000) if server_for(f"l{n}", urls) != urls[-1]]
        timings = []
        for key in live[:LIVE_READS]:
            started = time.perf_counter()
            client.get(key)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), p99(timings)


def print_section(result: ShardResult) -> None:
    print(
        f"Several memory-store processes behind one sharded client ({CLIENT_THREADS} client "
        f"threads, 75% get / 25% set; {os.cpu_count()} cores shared by the client and the "
        "servers: the figure is bounded by them)\n"
    )
    rows = [("figure", "1 process", "2 processes", "4 processes")]
    rows.append(("client ops/s", *(f"{result.ops_per_second[n]:,.0f}/s" for n in PROCESSES)))
    print_table(rows)
    median, p99 = result.live_get_ms
    print()
    print_table(
        [
            ("figure", "value"),
            (f"key balance, 4 processes, {KEYS:,} keys (max/mean)", f"{result.balance:.3f}"),
            (f"keys a 4th process takes from 3 ({KEYS:,} keys)", f"{result.moved:.1%}"),
            ("a live key's get, 1 of 4 processes down (median/p99)", f"{median:.2f}/{p99:.2f} ms"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shard_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a second per figure (CI)")
    options = parser.parse_args()
    print_section(measure_shards(1.0 if options.smoke else 3.0, 1 if options.smoke else 3))


if __name__ == "__main__":
    main()
