"""Graceful shutdown: SIGTERM or SIGINT lets in-flight requests finish, then exits 0."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from .conftest import ROOT, free_port, wait_until_serving

# A server whose /slow verb takes a second, and which acknowledges a write on the way.
SERVER = """
import time
from memflask import create_app
from memflask.commands.base import Command, Result
from memflask.serve import serve


class Slow(Command):
    name = "slow"
    writes = True

    def validate(self, params):
        return None

    def apply(self, store, args):
        time.sleep(1.0)
        return Result(200, value="finished")


app = create_app()
app.extensions["memflask"].context.registry.register(Slow)
serve(app)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_request_in_flight_finish_and_exits_0(signum):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        env={"PORT": str(port), "PATH": os.environ.get("PATH", "")},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, process)
        answers: list[tuple[int, bytes]] = []

        def slow_request() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", "/slow")
                response = connection.getresponse()
                answers.append((response.status, response.read()))
            finally:
                connection.close()

        client = threading.Thread(target=slow_request)
        client.start()
        time.sleep(0.3)  # the request is now inside the app's one-second sleep
        process.send_signal(signum)
        client.join(30)
        assert answers == [(200, b"finished")]
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr
    after = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises(OSError):
        after.request("GET", "/healthz")
    after.close()
