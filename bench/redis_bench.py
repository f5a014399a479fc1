"""memflask on one Redis against memflask on the memory store, over HTTP in the same run.

`python -m bench` runs this section with the rest; `python -m bench.redis_bench [--smoke]`
runs it alone. Without redis-server it is skipped, with a line that says so.

The bench starts its own redis-server on a free loopback port (a temporary directory, no
persistence: `--save '' --appendonly no`) and stops it at the end. On each server
(waitress, and granian when installed), with the one command and settings every app gets
there (bench/serve.py), it starts three memflask processes: one on the memory store, and
two on the Redis (`MEMFLASK_STORE_URL=redis://127.0.0.1:<port>/0`), each on its own port.

Every round runs each scenario against: the memory store; one process on the Redis; and
both processes on the Redis at once (a wrk against each, -t2 -c8 as every other row,
their req/s summed). One process per store is the fair comparison of the stores: the
memory store cannot take a second process (each would hold a cache of its own). The
second process is what Redis makes possible, measured separately.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import NamedTuple, Optional

import redis

from . import serve
from .http_bench import (
    CONNECTIONS,
    WRK_THREADS,
    LocalServer,
    Measure,
    free_port,
    require_wrk,
    run_wrk_at_once,
    scenarios,
)
from .report import print_table, rate
from .targets import redis_verdicts

REDIS_SCENARIOS = ("/get hit", "/set")
MEMORY, ONE, TWO = "memory", "redis-1", "redis-2"
LAYOUTS = (MEMORY, ONE, TWO)
SKIPPED = "skipped: redis-server is not installed (Debian: apt-get install redis-server)"


class RedisResult(NamedTuple):
    measures: dict[tuple[str, str, str], Measure]  # (scenario, server, layout) -> medians
    servers: tuple[str, ...]
    version: str  # redis-server's
    notes: list[str]


class RedisServer:
    """A throwaway redis-server on a free loopback port: no persistence, its own directory."""

    def __init__(self, executable: str):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="memflask-bench-redis-")
        command = [
            *(executable, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--dir", self.directory, "--save", "", "--appendonly", "no"),
            *("--loglevel", "warning"),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self.version = self._wait_until_ready()

    def _wait_until_ready(self) -> str:
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    return client.info("server")["redis_version"]
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        raise RuntimeError("bench: redis-server did not start") from None
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def measure_redis(seconds: float, rounds: int) -> Optional[RedisResult]:
    """Median of `rounds` runs of each scenario on every (server, layout), in an order
    rotated by one each round; None when redis-server is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        return None
    wrk = require_wrk()
    notes: list[str] = []
    servers = serve.SERVERS
    if not serve.granian_installed():
        servers = tuple(server for server in servers if server != "granian")
        notes.append("granian is not installed: no granian rows (pip install granian)")
    plan = [scenario for scenario in scenarios() if scenario.name in REDIS_SCENARIOS]
    store = RedisServer(executable)
    started: list[LocalServer] = []
    running: dict[tuple[str, str], list[LocalServer]] = {}
    try:
        for server in servers:
            memory = LocalServer(
                "memflask", server, {"MEMFLASK_STORE_URL": "memory://"}, f"memflask on {server}"
            )
            started.append(memory)
            on_redis = []
            for number in (1, 2):
                label = f"memflask {number} on {server}, Redis"
                on_redis.append(
                    LocalServer("memflask", server, {"MEMFLASK_STORE_URL": store.url}, label)
                )
                started.append(on_redis[-1])
            running[(server, MEMORY)] = [memory]
            running[(server, ONE)] = on_redis[:1]
            running[(server, TWO)] = on_redis
        for process in started:
            process.seed()
        order = list(running)
        runs: dict[tuple[str, str, str], list[Measure]] = {}
        for round_number in range(rounds):
            shift = round_number % len(order)
            for scenario in plan:
                for server, layout in order[shift:] + order[:shift]:
                    urls = [process.url(scenario.path) for process in running[(server, layout)]]
                    measures = run_wrk_at_once(wrk, urls, seconds, scenario, notes)
                    runs.setdefault((scenario.name, server, layout), []).append(total(measures))
    finally:
        for process in started:
            process.stop()
        store.stop()
    medians = {
        key: Measure(
            statistics.median(m.requests_per_second for m in measured),
            statistics.median(m.p50_ms for m in measured),
            statistics.median(m.p99_ms for m in measured),
        )
        for key, measured in runs.items()
    }
    return RedisResult(medians, servers, store.version, notes)


def total(measures: list[Measure]) -> Measure:
    """Processes measured at once: their req/s summed, the slower one's latencies."""
    return Measure(
        sum(measure.requests_per_second for measure in measures),
        max(measure.p50_ms for measure in measures),
        max(measure.p99_ms for measure in measures),
    )


def redis_rows(result: RedisResult) -> list[tuple[str, ...]]:
    """One row per scenario and server: the memory store, one and two processes on the
    Redis, and the ratios the targets judge."""
    header = ("figure", "server", "memory store", "Redis, 1 process", "Redis, 2 processes")
    header += ("Redis / memory", "2 / 1 processes", "target")
    rows = [header]
    for scenario in REDIS_SCENARIOS:
        for server in result.servers:
            memory, one, two = (result.measures[(scenario, server, kind)] for kind in LAYOUTS)
            versus_memory = one.requests_per_second / memory.requests_per_second
            two_over_one = two.requests_per_second / one.requests_per_second
            rows.append(
                (
                    scenario,
                    server,
                    rate(memory),
                    rate(one),
                    rate(two),
                    f"{versus_memory:.2f}",
                    f"{two_over_one:.2f}",
                    "; ".join(redis_verdicts(scenario, versus_memory, two_over_one)),
                )
            )
    return rows


def print_section(result: Optional[RedisResult]) -> None:
    """The section's heading and table, or the line that says it was skipped."""
    if result is None:
        print(f"HTTP, memflask on one Redis: {SKIPPED}")
        return
    print(
        f"HTTP, memflask on one Redis (redis-server {result.version}, the bench's own): "
        "req/s (p50/p99 latency); 2 processes: both at once, req/s summed, the slower's "
        "latencies\n"
    )
    print_table(redis_rows(result))
    for note in dict.fromkeys(result.notes):
        print(f"note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a second per figure (CI)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (median taken)")
    parser.add_argument("--seconds", type=int, help="seconds per HTTP run (whole: wrk's unit)")
    options = parser.parse_args()
    rounds = options.rounds or (1 if options.smoke else 3)
    seconds = options.seconds or (1 if options.smoke else 3)
    started = time.monotonic()
    result = measure_redis(seconds, rounds)
    print(
        f"memflask bench, Redis ({'smoke' if options.smoke else 'full'}): "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"wrk -t{WRK_THREADS} -c{CONNECTIONS}, {seconds:g} s x {rounds} rounds (medians)\n"
    )
    print_section(result)
    print(f"\n{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
