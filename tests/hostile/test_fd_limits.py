"""More clients than open files: the server stops accepting instead of spinning on EMFILE.

Each server runs in a process whose hard open-file limit is 256, on every production
entry point; 300 clients connect and stay. waitress used to spin at 100% CPU logging an
`accept() threw an exception` traceback per turn (tens of megabytes in seconds).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness.servers import ROOT, free_port, wait_until_serving

OPEN_FILES = 256
ATTACKERS = 300
WATCHED_SECONDS = 3.0

needs_granian = pytest.mark.skipif(
    importlib.util.find_spec("granian") is None, reason="granian is an optional extra"
)


def entry_point(name: str, port: int) -> list[str]:
    return {
        "python -m memflask": ["-m", "memflask"],
        "waitress-serve wsgi:app": ["-m", "waitress", f"--listen=127.0.0.1:{port}", "wsgi:app"],
        "memflask serve --server granian": ["-m", "memflask.cli", "serve", "--server", "granian"],
    }[name]


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` and of its children (granian's workers), in seconds."""
    total = 0.0
    for candidate in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    """(process, port, stderr path) of memflask served as `request.param` says."""
    port = free_port()
    log_path = tmp_path / "stderr.log"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": f"127.0.0.1:{port}",
        "APP_ENV": "production",
        "MEMFLASK_INSTANCE_PATH": str(tmp_path),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, *entry_point(request.param, port)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=limit_open_files,
            start_new_session=True,  # granian's worker is stopped with it
        )
    try:
        wait_until_serving(port, process)
        yield process, port, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)


def healthz_answered(port: int, seconds: float = 10) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "server",
    [
        "python -m memflask",
        "waitress-serve wsgi:app",
        pytest.param("memflask serve --server granian", marks=needs_granian),
    ],
    indirect=True,
)
def test_more_clients_than_open_files_neither_spin_nor_flood_the_log(server):
    process, port, log_path = server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * ATTACKERS:  # this process holds the client end of every connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * ATTACKERS), hard))
    attackers = []
    try:
        for _ in range(ATTACKERS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            attackers.append(sock)
        time.sleep(0.5)  # the server accepts what it can
        before = cpu_seconds(process.pid)
        time.sleep(WATCHED_SECONDS)
        spent = cpu_seconds(process.pid) - before
        assert spent < WATCHED_SECONDS / 3, f"{spent:.2f} s of CPU in {WATCHED_SECONDS} s"
    finally:
        for sock in attackers:
            sock.close()
    assert healthz_answered(port)
    log = log_path.read_bytes()
    assert b"open files are limited to 256" in log
    assert log.count(b"\n") < 20, log[-2000:]


def test_the_connection_limit_fits_the_open_files():
    script = (
        "from memflask.serving.fd_limits import connections_that_fit as fit;"
        "print(fit(4096, 4), fit(40, 4), fit(4096, 1))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        preexec_fn=limit_open_files,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # (256 - 64 reserved) / 4 per waitress connection; 40 fit; 192 of granian's.
    assert finished.stdout.split() == ["48", "40", "192"], finished
    assert finished.stderr.count("open files are limited to 256") == 2, finished.stderr
