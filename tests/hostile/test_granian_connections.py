"""Hostile clients against a real granian process: silent sockets and slow bodies.

memflask served by granian as `memflask serve --server granian` serves it (one worker,
the memory store), on a free loopback port, with small limits. Each test attacks it and
checks that a fresh request is still answered within a generous deadline, where before
the fix it waited until the attacker gave up (issue 20, items 5 and 6).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

pytest.importorskip("granian", reason="granian is an optional extra: pip install memflask[granian]")

from tests.harness.servers import ROOT, free_port, wait_until_serving

# 1,024 silent sockets were enough: granian's default backpressure.
SILENT_SOCKETS = 1100
# A fresh request must be answered within this, attack or not (today's main: 10 s and more).
FRESH_SECONDS = 5.0
# memflask.serving.granian's HEADER_SECONDS and BODY_SECONDS, with room to spare.
HEADER_SECONDS = 10
BODY_SECONDS = 10
# A form body sent 1 byte a second: it takes longer than BODY_SECONDS to arrive.
DRIPPED_BODY = b"key=drip&value=x"
# What a slow body announces and never sends: one byte of it holds a reader.
DRIPPING_LENGTH = 1024 * 1024


@pytest.fixture
def granian_port(tmp_path) -> Iterator[int]:
    """memflask on granian, as `memflask serve --server granian` runs it; its port."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "APP_ENV": "production",
        "MEMFLASK_SNAPSHOT_PATH": str(tmp_path / "cache.json"),
        "MEMFLASK_SNAPSHOT_INTERVAL": "0",
    }
    command = [sys.executable, "-m", "memflask.cli", "serve", "--server", "granian"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its worker is stopped with it
    )
    try:
        wait_until_serving(port, process)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture
def open_files_for_silent_sockets() -> Iterator[None]:
    """Room for SILENT_SOCKETS in this process (and the server it starts): the soft
    open-file limit raised if needed, restored afterwards; skipped if it cannot be."""
    needed = 2 * SILENT_SOCKETS + 256  # both ends, when the server inherits the limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the hard open-file limit ({hard}) is below the {needed} this needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def fresh_get(port: int, path: str) -> tuple[int, bytes, float]:
    """A fresh connection's GET: status, body and seconds taken (FRESH_SECONDS at most)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=FRESH_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        connection.close()


def test_silent_sockets_leave_a_fresh_request_answered(open_files_for_silent_sockets, granian_port):
    silent: list[socket.socket] = []
    try:
        for _ in range(SILENT_SOCKETS):
            silent.append(socket.create_connection(("127.0.0.1", granian_port), timeout=5))
        # Before: granian served 1,024 connections at once; the fresh one waited in the
        # backlog until the silent ones were closed, 30 s later.
        status, body, _ = fresh_get(granian_port, "/healthz")
        assert (status, body) == (200, b'{"status":"ok"}\n')
        # The silent sockets are closed after HEADER_SECONDS (granian's default: 30 s).
        silent[0].settimeout(HEADER_SECONDS + 5)
        assert silent[0].recv(1) == b""
    finally:
        for sock in silent:
            sock.close()


def granian_version() -> tuple[int, ...]:
    from granian import __version__

    return tuple(int(part) for part in __version__.split(".")[:2] if part.isdigit())


# granian before 2.7 (the last release for Python 3.9 is 2.5.7) starts another blocking
# thread only when two requests wait: a lone request behind a slow body waits for it.
@pytest.mark.xfail(
    granian_version() < (2, 7),
    reason="granian < 2.7 starts another thread only for a second waiting request",
    strict=True,
)
def test_a_slow_body_holds_neither_the_app_nor_its_connection_forever(granian_port):
    head = (
        "POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(DRIPPED_BODY)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", granian_port), timeout=5) as dripping:
        dripping.sendall(head.encode() + DRIPPED_BODY[:1])
        time.sleep(1)
        # Before: granian's one thread read this body, and every request waited for it.
        status, body, _ = fresh_get(granian_port, "/healthz")
        assert (status, body) == (200, b'{"status":"ok"}\n')
        answer = b""
        for byte in DRIPPED_BODY[1:]:
            time.sleep(1)
            try:
                dripping.sendall(bytes([byte]))
            except OSError:  # closed on us: a clear end too
                break
        # A body that took over BODY_SECONDS: 408 (or the connection closed), and its
        # command never ran.
        dripping.settimeout(BODY_SECONDS)
        with contextlib.suppress(ConnectionResetError):
            answer = dripping.recv(4096)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"error":"request_timeout"' in answer or answer == b""
    status, _, _ = fresh_get(granian_port, "/get?key=drip")
    assert status == 404


def dripping_post(port: int) -> socket.socket:
    """A /set that announces a 1 MiB body and sends 1 byte of it: a reader held."""
    head = (
        "POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {DRIPPING_LENGTH}\r\n\r\nk"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.encode())
    return sock


def answered_within(sockets: list[socket.socket], seconds: float) -> list[bytes]:
    """The first bytes of every answer among `sockets` that came within `seconds`."""
    answers: list[bytes] = []
    waiting = list(sockets)
    deadline = time.monotonic() + seconds
    while waiting and time.monotonic() < deadline:
        readable, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for sock in readable:
            waiting.remove(sock)
            with contextlib.suppress(OSError):
                answers.append(sock.recv(4096))
    return answers


@pytest.mark.xfail(
    granian_version() < (2, 7),
    reason="granian < 2.7 starts another thread only for a second waiting request",
    strict=True,
)
def test_slow_bodies_leave_threads_for_fresh_requests(granian_port):
    from memflask.serving.granian import BLOCKING_THREADS, BODY_READERS

    dripping: list[socket.socket] = []
    try:
        # More slow bodies than granian has threads: before, every thread read one, and
        # every fresh request waited for them (granian has no body read timeout).
        for _ in range(BLOCKING_THREADS + 2):
            dripping.append(dripping_post(granian_port))
        # The bodies past BODY_READERS are answered 503 at once, unread.
        refused = answered_within(dripping, FRESH_SECONDS)
        assert len(refused) >= BLOCKING_THREADS + 2 - BODY_READERS
        assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in refused), refused[:1]
        status, body, _ = fresh_get(granian_port, "/healthz")
        assert (status, body) == (200, b'{"status":"ok"}\n')
        status, _, _ = fresh_get(granian_port, "/get?key=missing")
        assert status == 404
        # A further body: 503 `busy` at once, a retry invited, its connection closed.
        with dripping_post(granian_port) as further:
            (answer,) = answered_within([further], FRESH_SECONDS) or [b""]
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
            assert b'"error":"busy"' in answer and b"retry-after: 1" in answer.lower()
    finally:
        for sock in dripping:
            sock.close()
