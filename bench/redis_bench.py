"""memflask on one Redis against memflask on the memory store, over HTTP in the same run.

`python -m bench` runs this section with the rest; `python -m bench.redis_bench [--smoke]`
runs it alone. Without redis-server it is skipped, with a line that says so.

The bench starts its own redis-server on a free loopback port (a temporary directory, no
persistence: `--save '' --appendonly no`) and stops it at the end. On each server
(waitress, and granian when installed), with the one command and settings every app gets
there (bench/serve.py), it starts: memflask on the memory store; two memflask processes
on the Redis (`MEMFLASK_STORE_URL=redis://127.0.0.1:<port>/0`); and three references,
the bare WSGI callable on a dict, the bare WSGI callable making one redis-py call per
request, and the same with its threads' calls pipelined (bench/references.py). On
granian, one more: memflask on the Redis with two workers. Each process has a port of
its own.

Every round runs each scenario against every layout (LAYOUTS), on every server, in an
order rotated by one each round. One process per store is the fair comparison of the
stores: the memory store cannot take a second process (each would hold a cache of its
own). The second process, or the second granian worker, is what Redis makes possible,
measured separately. The references show the ceiling: what any Python app pays for one
redis-py round trip on this machine, against a dict lookup on the same server, and what
the other client shape, pipelining concurrent requests' calls, would change.
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
from .targets import REDIS_GOALS, redis_verdicts

REDIS_SCENARIOS = ("/get hit", "/set")
MEMORY, ONE, TWO, WORKERS = "memory", "redis-1", "redis-2", "redis-2-workers"
BARE_DICT, BARE_REDIS, BARE_PIPELINED = "bare-dict", "bare-redis", "bare-redis-pipelined"
SKIPPED = "skipped: redis-server is not installed (Debian: apt-get install redis-server)"


class Process(NamedTuple):
    """One process of the section, as bench/serve.py serves it on a server."""

    app: str  # a name in serve.APPS or serve.REDIS_APPS
    store: str  # "memory" or "redis": the MEMFLASK_STORE_URL it is given
    workers: int = 1  # granian's
    copy: int = 1  # 2: a second process like the first, on a port of its own


ON_REDIS = Process("memflask", "redis")
# What each figure is measured on: wrk runs against each process of a layout at once.
LAYOUTS: dict[str, tuple[Process, ...]] = {
    MEMORY: (Process("memflask", "memory"),),
    ONE: (ON_REDIS,),
    TWO: (ON_REDIS, ON_REDIS._replace(copy=2)),
    WORKERS: (ON_REDIS._replace(workers=2),),
    BARE_DICT: (Process("bare-wsgi", "memory"),),
    BARE_REDIS: (Process("bare-wsgi-redis", "redis"),),
    BARE_PIPELINED: (Process("bare-wsgi-redis-pipelined", "redis"),),
}
GRANIAN_ONLY = (WORKERS,)  # waitress runs in one process


class RedisResult(NamedTuple):
    measures: dict[tuple[str, str, str], Measure]  # (scenario, server, layout) -> medians
    servers: tuple[str, ...]
    version: str  # redis-server's
    notes: list[str]


def plan(servers: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (server, layout) pairs every round measures, in the first round's order."""
    return [
        (server, layout)
        for server in servers
        for layout in LAYOUTS
        if server == "granian" or layout not in GRANIAN_ONLY
    ]


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
    figures = [scenario for scenario in scenarios() if scenario.name in REDIS_SCENARIOS]
    order = plan(servers)
    store = RedisServer(executable)
    started: dict[tuple[str, Process], LocalServer] = {}
    runs: dict[tuple[str, str, str], list[Measure]] = {}
    try:
        for server, layout in order:
            for process in LAYOUTS[layout]:
                if (server, process) not in started:
                    started[(server, process)] = start(process, server, store.url)
        for process in started.values():
            process.seed()
        for round_number in range(rounds):
            shift = round_number % len(order)
            for scenario in figures:
                for server, layout in order[shift:] + order[:shift]:
                    urls = [
                        started[(server, process)].url(scenario.path) for process in LAYOUTS[layout]
                    ]
                    measures = run_wrk_at_once(wrk, urls, seconds, scenario, notes)
                    runs.setdefault((scenario.name, server, layout), []).append(total(measures))
    finally:
        for process in started.values():
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


def start(process: Process, server: str, redis_url: str) -> LocalServer:
    """`process` served on `server`, on the bench's Redis or on the memory store."""
    url = redis_url if process.store == "redis" else "memory://"
    label = f"{process.app} {process.copy} on {server} ({process.workers} worker), {process.store}"
    return LocalServer(
        process.app, server, {"MEMFLASK_STORE_URL": url}, label, workers=process.workers
    )


def total(measures: list[Measure]) -> Measure:
    """Processes measured at once: their req/s summed, the slower one's latencies."""
    return Measure(
        sum(measure.requests_per_second for measure in measures),
        max(measure.p50_ms for measure in measures),
        max(measure.p99_ms for measure in measures),
    )


def redis_rows(result: RedisResult) -> list[tuple[str, ...]]:
    """One row per scenario and server: memflask on the memory store, on one and two
    processes on the Redis, on one process of two granian workers ("-" on waitress), and
    the ratios the targets judge."""
    header = ("figure", "server", "memory store", "Redis, 1 process", "Redis, 2 processes")
    header += ("Redis, 2 workers", "Redis / memory", "2 / 1 processes", "2 / 1 workers")
    rows = [(*header, "target")]
    for scenario in REDIS_SCENARIOS:
        for server in result.servers:
            cells = [scenario, server]
            for layout in (MEMORY, ONE, TWO, WORKERS):
                measure = result.measures.get((scenario, server, layout))
                cells.append(rate(measure) if measure else "-")
            versus_memory = ratio(result, scenario, server, ONE, MEMORY)
            two_over_one = ratio(result, scenario, server, TWO, ONE)
            cells += [f"{versus_memory:.2f}", f"{two_over_one:.2f}"]
            with_workers = (scenario, server, WORKERS) in result.measures
            cells.append(
                f"{ratio(result, scenario, server, WORKERS, ONE):.2f}" if with_workers else "-"
            )
            cells.append("; ".join(redis_verdicts(scenario, versus_memory, two_over_one)))
            rows.append(tuple(cells))
    return rows


# The ceiling table's ratios: (layout over layout), in its columns' order. The third is
# the most memflask's Redis / memory could be if its work on Redis cost no more than the
# bare callable's: the bare callable on Redis over memflask on the memory store.
CEILING_RATIOS = (
    (BARE_REDIS, BARE_DICT),
    (ONE, MEMORY),
    (BARE_REDIS, MEMORY),
    (MEMORY, BARE_DICT),
    (ONE, BARE_REDIS),
)
# The other client shape: the bare callable with its threads' calls pipelined, against
# one call per request, and the bound it would set on memflask (over its memory store).
PIPELINED_RATIOS = ((BARE_PIPELINED, BARE_REDIS), (BARE_PIPELINED, MEMORY))


def ceiling_rows(result: RedisResult) -> list[tuple[str, ...]]:
    """One row per scenario and server: the bare WSGI callable on a dict and on the Redis
    (one redis-py call per request); what the Redis costs it beside what it costs
    memflask, and the bound that sets on memflask's ratio; and memflask against the
    callable on each store."""
    header = ("figure", "server", "bare WSGI, dict", "bare WSGI, Redis")
    header += ("bare WSGI: Redis / dict", "memflask: Redis / memory")
    header += ("bare WSGI, Redis / memflask, memory",)
    header += ("memflask / bare WSGI, dict", "memflask / bare WSGI, Redis")
    rows = [header]
    for scenario in REDIS_SCENARIOS:
        for server in result.servers:
            cells = [scenario, server]
            cells += rates_and_ratios(
                result, scenario, server, (BARE_DICT, BARE_REDIS), CEILING_RATIOS
            )
            rows.append(tuple(cells))
    return rows


def pipelined_rows(result: RedisResult) -> list[tuple[str, ...]]:
    """One row per scenario and server: the bare callable with its threads' calls
    pipelined, against one call per request, and the bound that shape would set on
    memflask's Redis / memory if memflask's own work cost nothing."""
    header = ("figure", "server", "bare WSGI, Redis", "bare WSGI, Redis pipelined")
    header += ("pipelined / one call each", "pipelined / memflask, memory", "target")
    rows = [header]
    for scenario in REDIS_SCENARIOS:
        for server in result.servers:
            cells = [scenario, server]
            rated = (BARE_REDIS, BARE_PIPELINED)
            cells += rates_and_ratios(result, scenario, server, rated, PIPELINED_RATIOS)
            cells.append(f"{REDIS_GOALS[scenario]:g}")
            rows.append(tuple(cells))
    return rows


def rates_and_ratios(
    result: RedisResult,
    scenario: str,
    server: str,
    layouts: tuple[str, ...],
    pairs: tuple[tuple[str, str], ...],
) -> list[str]:
    """The cells of a reference table's row: each layout's req/s (p50/p99), then each
    pair's ratio, for `scenario` on `server`."""
    cells = [rate(result.measures[(scenario, server, layout)]) for layout in layouts]
    return cells + [f"{ratio(result, scenario, server, *pair):.2f}" for pair in pairs]


def ratio(result: RedisResult, scenario: str, server: str, ours: str, theirs: str) -> float:
    """Layout `ours`'s req/s over layout `theirs`'s, for `scenario` on `server`."""
    mine, other = (result.measures[(scenario, server, layout)] for layout in (ours, theirs))
    return mine.requests_per_second / other.requests_per_second


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
    print(
        "\nThe ceiling, same run: the bare WSGI callable on a dict and on the same Redis "
        "(one redis-py call per request: GET for /get, SET for /set), req/s (p50/p99 "
        "latency)\n"
    )
    print_table(ceiling_rows(result))
    print(
        "\nThe other client shape, same run: the bare callable on the Redis with its "
        "threads' calls pipelined (one round trip carries every call waiting), req/s "
        "(p50/p99 latency)\n"
    )
    print_table(pipelined_rows(result))
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
