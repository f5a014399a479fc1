"""Graceful shutdown: SIGTERM or SIGINT lets in-flight requests finish, then exits 0.

A second signal exits at once, and serve() puts back the signal handlers it replaced.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.harness.servers import ROOT, free_port, wait_until_serving

# A server whose /slow verb (tests/harness/slow_verb.py) takes SLOW_SECONDS (1 by default), and
# which acknowledges a write on the way. It prints whether serve() put back the signal
# handlers it found: a Python function for SIGTERM, Python's default for SIGINT.
SERVER = """
import signal
from memflask import create_app
from memflask.serving.waitress import serve
from tests.harness.slow_verb import Slow


def handlers():
    return {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}


def previous_sigterm_handler(signum, frame):
    raise SystemExit("the previous SIGTERM handler ran")


signal.signal(signal.SIGTERM, previous_sigterm_handler)
before = handlers()
app = create_app()
app.extensions["memflask"].context.registry.register(Slow)
serve(app)
after = handlers()
print("handlers restored" if after == before else f"handlers changed: {before} -> {after}")
"""

# Long enough that a stop waiting for the request could not pass for a stop at once.
SLOW_FOREVER_SECONDS = 60
# How long a stop at once may take, from the second signal to the process's exit.
AT_ONCE_SECONDS = 10


def start_server(port: int, slow_seconds: float = 1.0) -> subprocess.Popen:
    environment = {
        "PORT": str(port),
        "PATH": os.environ.get("PATH", ""),
        "SLOW_SECONDS": str(slow_seconds),
    }
    return subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_slow_request(port: int, answers: list) -> threading.Thread:
    """POST /slow in a thread; `answers` gets (status, body), or the error that ended it."""

    def slow_request() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
        try:
            connection.request("POST", "/slow")
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        except (OSError, http.client.HTTPException) as error:
            answers.append(error)
        finally:
            connection.close()

    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    time.sleep(0.3)  # the request is now inside the app's sleep
    return client


def wait_until_not_listening(port: int) -> None:
    """Wait (30 s at most) until nothing accepts connections on `port`: the stop began."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass  # the listener closed with this connection in its queue: the next is refused
        time.sleep(0.05)
    raise AssertionError("the server still accepts connections")


def finish(process: subprocess.Popen) -> tuple[str, str]:
    """Kill `process` if it still runs; return its (stdout, stderr)."""
    if process.poll() is None:
        process.kill()
    return process.communicate(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_request_in_flight_finish_and_exits_0(signum):
    port = free_port()
    process = start_server(port)
    try:
        wait_until_serving(port, process)
        answers: list = []
        client = start_slow_request(port, answers)
        process.send_signal(signum)
        client.join(30)
        assert answers == [(200, b"finished")]
        assert process.wait(timeout=30) == 0
    finally:
        _, stderr = finish(process)
    assert "Traceback" not in stderr, stderr
    after = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises(OSError):
        after.request("GET", "/healthz")
    after.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_puts_back_the_signal_handlers_it_replaced(signum):
    port = free_port()
    process = start_server(port)
    try:
        wait_until_serving(port, process)
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
    finally:
        stdout, stderr = finish(process)
    assert stdout.strip() == "handlers restored", (stdout, stderr)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_stops_at_once_without_the_request_in_flight(signum):
    port = free_port()
    process = start_server(port, slow_seconds=SLOW_FOREVER_SECONDS)
    try:
        wait_until_serving(port, process)
        answers: list = []
        client = start_slow_request(port, answers)
        process.send_signal(signum)
        # Two signals close together may reach Python's handler as one; the second is
        # sent once the first began the stop (the listening socket is closed).
        wait_until_not_listening(port)
        process.send_signal(signum)
        assert process.wait(timeout=AT_ONCE_SECONDS) == 0
        client.join(AT_ONCE_SECONDS)
        assert not client.is_alive()
        assert len(answers) == 1
        assert isinstance(answers[0], (OSError, http.client.HTTPException)), answers
    finally:
        stdout, stderr = finish(process)
    assert "Traceback" not in stderr, stderr
    assert stdout.strip() == "handlers restored", (stdout, stderr)
