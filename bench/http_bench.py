"""HTTP figures: wrk against real servers, memflask beside its references in the same run.

Every app (memflask, the minimal Flask app, the bare WSGI callable) runs in its own
process on each server (waitress, and granian when it is installed). A reference
server given with `--reference NAME=URL` (the Go original, say) is already running:
it is measured for the scenarios it serves, found by asking it once before measuring.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple, Optional

import psutil

from . import serve

ROOT = Path(__file__).resolve().parent.parent
# 8 connections from 2 wrk threads, as the issue's own measurements (see README, "wrk").
WRK_THREADS = 2
CONNECTIONS = 8
# The latency table's second load: as many connections as a busy app server pool opens.
MANY_CONNECTIONS = 64
BATCH_SIZES = (10, 100)
LOCAL_APPS = ("memflask", serve.PLAIN_WAITRESS, "flask-minimal", "bare-wsgi")
# The apps of the latency table (with each reference server).
LATENCY_APPS = ("memflask", "bare-wsgi")
# Every key a scenario reads, written into each server before measuring.
SEEDED_KEYS = max(BATCH_SIZES)
COUNTER = "counter"


class Measure(NamedTuple):
    requests_per_second: float  # ops/s for a scenario of several operations per request
    p50_ms: float
    p99_ms: float
    p999_ms: float = 0.0


class Target(NamedTuple):
    """What one wrk run is aimed at: an app on a server, or a reference server."""

    app: str  # "memflask", "flask-minimal", "bare-wsgi", or the reference's name
    server: str  # "waitress", "granian", or "reference"


class Scenario(NamedTuple):
    name: str
    path: str
    ops_per_request: int = 1
    body: Optional[str] = None  # a JSON body makes it a POST
    answers_404: bool = False  # a miss: 404 is the right answer
    memflask_only: bool = False  # memflask's own verbs: the references have no such route
    # A request that succeeds where the route exists; `path` itself when None. (A miss
    # cannot show it: a server without the route answers 404 as well.)
    probe_path: Optional[str] = None
    connections: int = CONNECTIONS
    latency_only: bool = False  # for the latency table: memflask, bare WSGI, references


class Result(NamedTuple):
    measures: dict[tuple[str, Target], Measure]  # (scenario name, target) -> medians
    servers: tuple[str, ...]  # the local servers measured: waitress, and granian if installed
    references: tuple[str, ...]  # the reference servers' names, as given
    notes: list[str]  # what was left out, and why


def scenarios() -> list[Scenario]:
    keys = [f"k{number}" for number in range(SEEDED_KEYS)]
    found = [
        Scenario("/get hit", "/get?key=k0"),
        Scenario(
            f"/get hit, {MANY_CONNECTIONS} connections",
            "/get?key=k0",
            connections=MANY_CONNECTIONS,
            latency_only=True,
        ),
        Scenario("/get miss", "/get?key=absent", answers_404=True, probe_path="/get?key=k0"),
        Scenario("/set", "/set?key=written&value=some-value"),
        Scenario("/increment", f"/increment?key={COUNTER}&value=1"),
        Scenario("/stats", "/stats"),
    ]
    for size in BATCH_SIZES:
        query = "&".join(f"key={key}" for key in keys[:size])
        found.append(Scenario(f"/mget x{size}", f"/mget?{query}", size, memflask_only=True))
        commands = json.dumps([{"verb": "get", "key": key} for key in keys[:size]])
        found.append(Scenario(f"/batch x{size}", "/batch", size, commands, memflask_only=True))
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
    """A server answering at `base_url`: started here (LocalServer) or already running."""

    def __init__(self, name: str, base_url: str):
        self.name = name
        self.base_url = base_url.rstrip("/")

    def url(self, path: str) -> str:
        return self.base_url + path

    def call(self, path: str, body: Optional[str] = None) -> int:
        """The status of one request (a JSON body makes it a POST)."""
        request = urllib.request.Request(self.url(path))
        if body is not None:
            request.data = body.encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def seed(self) -> None:
        # The counter too, so every server increments an existing integer: the Go original
        # drops the connection on /increment of an absent key (it reads a nil element).
        writes = [f"/set?key=k{number}&value=value-{number}" for number in range(SEEDED_KEYS)]
        for path in [*writes, f"/set?key={COUNTER}&value=0"]:
            status = self.call(path)
            if status != 204:
                raise RuntimeError(f"bench: {self.name} answered {path} with {status}")

    def refusal(self, scenario: Scenario) -> Optional[str]:
        """Why this server does not serve `scenario` (None: it does), asked once, after
        seeding: its probe must succeed."""
        try:
            status = self.call(scenario.probe_path or scenario.path, scenario.body)
        except (OSError, http.client.HTTPException) as error:
            return f"its probe failed ({error!r})"
        return None if 200 <= status < 300 else f"its probe answered {status}"

    def stop(self) -> None:
        """A reference server is someone else's: it keeps running."""


class LocalServer(Server):
    """One benchmarked app on one server, in a process (group) of its own."""

    def __init__(
        self,
        app: str,
        server: str,
        environment: Optional[dict[str, str]] = None,
        label: str = "",
        workers: int = 1,
    ):
        """`environment`: more variables for the app (MEMFLASK_STORE_URL, say); `label`
        names the process in messages ("memflask on waitress, Redis"); `workers`: granian's."""
        port = free_port()
        super().__init__(label or f"{app} on {server}", f"http://127.0.0.1:{port}")
        # What the server says (stock waitress warns of its task queue under load) goes
        # to a file, shown if it does not start.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop)
        # A process group of its own: granian forks a worker, and a stop must reach it
        # too. Not a session of its own: Linux's autogroup scheduler shares the CPU out
        # between sessions first, so a server in its own session gets half the cores
        # against wrk's, where a reference started from the bench's shell competes thread
        # by thread (memflask on granian measured 25,000 /get/s against 45,000).
        self.process = subprocess.Popen(
            serve.command(
                server,
                app,
                port,
                workers,
                (environment or {}).get("MEMFLASK_STORE_URL", "memory://"),
            ),
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                **serve.ENVIRONMENT,
                **(environment or {}),
            },
            stdout=self.log,
            stderr=self.log,
            preexec_fn=os.setpgrp,  # safe: the bench starts its servers from one thread
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.call("/stats")
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    self.log.seek(0)
                    said = self.log.read()[-4000:]
                    raise RuntimeError(f"bench: {self.name} did not start:\n{said}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# wrk's --latency prints percentiles up to the 99th; its script API has every one.
P999_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format("p99.9 %d\\n", latency:percentile(99.9)))
end
"""


def run_wrk(wrk: str, url: str, seconds: float, scenario: Scenario, notes: list[str]) -> Measure:
    return run_wrk_at_once(wrk, [url], seconds, scenario, notes)[0]


def run_wrk_at_once(
    wrk: str, urls: list[str], seconds: float, scenario: Scenario, notes: list[str]
) -> list[Measure]:
    """One wrk per URL, all started together (each -t2 -c8): their measures in order."""
    connections = scenario.connections
    command = [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(P999_SCRIPT)
        if scenario.body is not None:
            script.write('wrk.method = "POST"\n')
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
            script.write(f"wrk.body = {json.dumps(scenario.body)}\n")
    try:
        command[1:1] = ["-s", script.name]
        runs = [
            subprocess.Popen([*command, url], stdout=subprocess.PIPE, text=True) for url in urls
        ]
        try:
            # Each wrk stops itself after `seconds`; the timeout only bounds a hung one.
            outputs = [run.communicate(timeout=seconds + 60)[0] for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
    finally:
        os.unlink(script.name)
    for run, url in zip(runs, urls):
        if run.returncode != 0:
            raise RuntimeError(f"bench: wrk on {url} exited with {run.returncode}")
    return [_measure(output, url, scenario, notes) for output, url in zip(outputs, urls)]


def _measure(output: str, url: str, scenario: Scenario, notes: list[str]) -> Measure:
    if "Non-2xx or 3xx responses" in output and not scenario.answers_404:
        raise RuntimeError(f"bench: error answers from {url}:\n{output}")
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        # Timeouts on a loaded shared machine, say: worth knowing, not worth the run.
        notes.append(f"wrk saw socket errors at {url} ({errors.group(1)})")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p999_us = float(re.search(r"^p99\.9 ([\d.]+)$", output, re.M).group(1))
    return Measure(rps, _latency(output, "50%"), _latency(output, "99%"), p999_us / 1000)


def _latency(output: str, percentile: str) -> float:
    number, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_reference(text: str) -> tuple[str, str]:
    """`NAME=URL` (as `--reference go=http://127.0.0.1:8001`) -> (NAME, URL)."""
    name, separator, url = text.partition("=")
    if not separator or not name or not url.startswith("http://"):
        raise ValueError(f"expected NAME=http://HOST:PORT, got {text!r}")
    if name in LOCAL_APPS:
        raise ValueError(f"{name!r} names one of the bench's own apps: choose another name")
    return name, url


def other_session_note(name: str, url: str) -> Optional[str]:
    """A note when reference `name`, listening on this machine, runs in a scheduler
    autogroup other than the bench's (see LocalServer): its figures would not compare."""
    address = urllib.parse.urlsplit(url)
    if address.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return None
    pid = listening_pid(address.port or 80)
    if pid is None or autogroup(pid) in (None, autogroup(os.getpid())):
        return None
    return (
        f"reference {name} (pid {pid}) runs in another session, so Linux's autogroup "
        "scheduler gives it a CPU share of its own: start it from the shell that runs "
        "the bench, or its ratios mean little"
    )


def listening_pid(port: int) -> Optional[int]:
    """The process listening on TCP `port` here, when this user may see it."""
    try:
        connections = psutil.net_connections("tcp")
    except psutil.Error:
        return None
    for connection in connections:
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid is not None:
            return connection.pid
    return None


def autogroup(pid: int) -> Optional[str]:
    """The autogroup ("/autogroup-12") the scheduler puts `pid` in, or None where it
    shares the CPU by thread alone (not Linux, or autogroup turned off). Linux groups
    only processes in the root CPU cgroup so: in a container with a CPU controller the
    note may warn of a share that is not applied."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return None
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except (OSError, IndexError):
        return None


def measure_http(
    seconds: float, rounds: int, references: Optional[dict[str, str]] = None
) -> Result:
    """Median of `rounds` runs of every scenario on every target, targets interleaved.

    `references` maps a name to the base URL of a running server that speaks the
    original's API. In every round, each scenario runs once on every target, in an order
    rotated by one each round, so no target always runs right after the same other.
    """
    wrk = require_wrk()
    plan = scenarios()
    notes = []
    servers = serve.SERVERS
    if not serve.granian_installed():
        servers = tuple(server for server in servers if server != "granian")
        notes.append("granian is not installed: no granian rows or targets (pip install granian)")
    running: dict[Target, Server] = {}
    try:
        for name, url in (references or {}).items():
            reference = Server(name, url)
            try:
                reference.seed()
            except (OSError, http.client.HTTPException) as error:
                sys.exit(f"bench: reference {name} at {url} did not take the seed keys: {error}")
            running[Target(name, "reference")] = reference
            note = other_session_note(name, url)
            if note:
                notes.append(note)
        for server in servers:
            for app in LOCAL_APPS:
                if app == serve.PLAIN_WAITRESS and server != "waitress":
                    continue
                running[Target(app, server)] = LocalServer(app, server)
                running[Target(app, server)].seed()
        targets = {scenario.name: aimed_at(scenario, running, notes) for scenario in plan}
        runs: dict[tuple[str, Target], list[Measure]] = {}
        for round_number in range(rounds):
            for scenario in plan:
                order = targets[scenario.name]
                shift = round_number % len(order)
                for target in order[shift:] + order[:shift]:
                    url = running[target].url(scenario.path)
                    measure = run_wrk(wrk, url, seconds, scenario, notes)
                    runs.setdefault((scenario.name, target), []).append(measure)
    finally:
        for server in running.values():
            server.stop()
    ops = {scenario.name: scenario.ops_per_request for scenario in plan}
    measures = {
        key: Measure(
            statistics.median(m.requests_per_second for m in measured) * ops[key[0]],
            statistics.median(m.p50_ms for m in measured),
            statistics.median(m.p99_ms for m in measured),
            statistics.median(m.p999_ms for m in measured),
        )
        for key, measured in runs.items()
    }
    return Result(measures, servers, tuple(references or ()), notes)


def serves(scenario: Scenario, app: str) -> bool:
    """Whether the bench's own `app` runs `scenario`: memflask's verbs only on memflask,
    the latency table's load only on its apps."""
    if scenario.memflask_only:
        return app == "memflask"
    return not scenario.latency_only or app in LATENCY_APPS


def aimed_at(scenario: Scenario, running: dict[Target, Server], notes: list[str]) -> list[Target]:
    """The targets that run `scenario`: memflask's own verbs only on memflask; a reference
    server only where it serves the route (noted where it does not)."""
    targets = []
    for target, server in running.items():
        if target.server == "reference":
            if scenario.memflask_only:
                continue  # not the original's API: compared with its /get instead
            refusal = server.refusal(scenario)
            if refusal is not None:
                notes.append(f"{target.app} does not serve {scenario.name}: {refusal}")
                continue
        elif not serves(scenario, target.app):
            continue
        targets.append(target)
    return targets
