"""`python -m bench.prefix_flush [--keys N]`: /get latency while /flush?prefix= removes N keys.

One `python -m memflask` process (memory store, no byte cap); N keys written through
/batch; then a reader times /get of another key, alone and while a prefix flush runs.
The flush must not hold the store for its whole work: the reader's answers during it
show how long a request waits (medians and tails; nothing is asserted).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prefix_flush", description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys under the prefix")
    keys = parser.parse_args().keys
    port = _free_port()
    environment = {**os.environ, "PORT": str(port), "APP_ENV": "production"}
    environment["MEMFLASK_MAX_BYTES"] = "0"  # every key stays: none evicted by the cap
    server = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env=environment, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_serving(port)
        writer = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.perf_counter()
        for first in range(0, keys, BATCH):
            commands = [
                {"verb": "set", "key": f"big:{number}", "value": "v"}
                for number in range(first, min(first + BATCH, keys))
            ]
            assert _call(writer, "POST", "/batch", json.dumps(commands))[0] == 200
        _call(writer, "GET", "/set?key=other&value=1")
        print(f"wrote {keys:,} keys in {time.perf_counter() - started:.1f} s")
        alone = _time_gets(port, count=2000)
        during: list[float] = []
        stop = threading.Event()
        reader = threading.Thread(target=_read_until, args=(port, stop, during))
        reader.start()
        started = time.perf_counter()
        status, body = _call(writer, "GET", "/flush?prefix=big:")
        took = time.perf_counter() - started
        stop.set()
        reader.join(timeout=120)
        print(f"/flush?prefix=big: answered {status} {body.decode().strip()} in {took:.2f} s")
        print(f"/get alone:            {_summary(alone)}")
        print(f"/get during the flush: {_summary(during)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _time_gets(port: int, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        _call(connection, "GET", "/get?key=other")
        timings.append(time.perf_counter() - started)
    return timings


def _read_until(port: int, stop: threading.Event, timings: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set() and len(timings) < 10_000_000:
        started = time.perf_counter()
        _call(connection, "GET", "/get?key=other")
        timings.append(time.perf_counter() - started)


def _summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"{len(ordered):,} requests, median {statistics.median(ordered) * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms, max {ordered[-1] * 1000:.2f} ms"
    )


def _call(connection: http.client.HTTPConnection, method: str, target: str, body=None):
    headers = {"Content-Type": "application/json"} if body else {}
    connection.request(method, target, body, headers)
    response = connection.getresponse()
    return response.status, response.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _call(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", "/healthz")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    main()
