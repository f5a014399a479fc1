"""HTTP figures: wrk against real waitress, memflask beside its references in the same run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 8
BATCH_SIZES = (10, 100)


class Measure(NamedTuple):
    requests_per_second: float
    p50_ms: float
    p99_ms: float


class Scenario(NamedTuple):
    name: str
    path: str
    apps: tuple[str, ...]
    ops_per_request: int = 1
    body: Optional[str] = None  # a JSON body makes it a POST
    answers_404: bool = False  # a miss: 404 is the right answer


def scenarios() -> list[Scenario]:
    every = ("memflask", "flask-minimal", "bare-wsgi")
    keys = [f"k{number}" for number in range(max(BATCH_SIZES))]
    found = [
        Scenario("/get hit", "/get?key=k0", every),
        Scenario("/get miss", "/get?key=absent", every, answers_404=True),
        Scenario("/set", "/set?key=written&value=some-value", every),
        Scenario("/increment", "/increment?key=counter&value=1", every),
        Scenario("/stats", "/stats", every),
    ]
    for size in BATCH_SIZES:
        query = "&".join(f"key={key}" for key in keys[:size])
        found.append(Scenario(f"/mget x{size}", f"/mget?{query}", ("memflask",), size))
        commands = [{"verb": "get", "key": key} for key in keys[:size]]
        found.append(
            Scenario(f"/batch x{size}", "/batch", ("memflask",), size, json.dumps(commands))
        )
    return found


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed; on Debian or Ubuntu: sudo apt-get install wrk")
    return wrk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One benchmarked app in its own waitress process."""

    def __init__(self, name: str):
        self.name = name
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", name, str(self.port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._wait_until_ready()
        for number in range(max(BATCH_SIZES)):
            self.call(f"/set?key=k{number}&value=value-{number}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, path: str) -> None:
        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            response.read()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.call("/stats")
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"bench: {self.name} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run_wrk(wrk: str, url: str, seconds: float, scenario: Scenario) -> Measure:
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if scenario.body is not None:
            script.write('wrk.method = "POST"\n')
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
            script.write(f"wrk.body = {json.dumps(scenario.body)}\n")
    try:
        command[1:1] = ["-s", script.name]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx or 3xx responses" in output and not scenario.answers_404:
        raise RuntimeError(f"bench: error answers from {url}:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return Measure(rps, _latency(output, "50%"), _latency(output, "99%"))


def _latency(output: str, percentile: str) -> float:
    number, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure_http(seconds: float, rounds: int) -> dict[tuple[str, str], Measure]:
    """Median of `rounds` runs of every scenario on every app, apps interleaved per round."""
    wrk = require_wrk()
    plan = scenarios()
    names = sorted({app for scenario in plan for app in scenario.apps})
    servers = {name: Server(name) for name in names}
    runs: dict[tuple[str, str], list[Measure]] = {}
    try:
        for _ in range(rounds):
            for scenario in plan:
                for app in scenario.apps:
                    measure = run_wrk(wrk, servers[app].url(scenario.path), seconds, scenario)
                    runs.setdefault((scenario.name, app), []).append(measure)
    finally:
        for server in servers.values():
            server.stop()
    ops = {scenario.name: scenario.ops_per_request for scenario in plan}
    return {
        key: Measure(
            statistics.median(m.requests_per_second for m in measures) * ops[key[0]],
            statistics.median(m.p50_ms for m in measures),
            statistics.median(m.p99_ms for m in measures),
        )
        for key, measures in runs.items()
    }
