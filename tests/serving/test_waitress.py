"""`waitress-serve wsgi:app`, the production command, serves as `python -m memflask` does:
graceful SIGTERM (in flight answered, snapshot saved, exit 0) and the same limits."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.harness.servers import ROOT, free_port, wait_until_serving
from tests.serving.test_keep_alive import read_answers
from tests.serving.test_shutdown import finish, start_slow_request

# wsgi.py's app with a /slow verb, as waitress-serve imports an app module.
SLOW_APP = """
from tests.harness.slow_verb import Slow
from wsgi import app


app.extensions["memflask"].context.registry.register(Slow)
"""


@pytest.fixture
def waitress_serve(tmp_path: Path):
    """Start exactly the README's production command (plus a /slow verb) on a free port."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "APP_ENV": "production",
        "MEMFLASK_SNAPSHOT_PATH": str(tmp_path / "cache.json"),
        "MEMFLASK_SNAPSHOT_INTERVAL": "0",  # saved only at a clean stop
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "slowapp:app"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, process)
        yield port, process, tmp_path / "cache.json"
    finally:
        finish(process)


def request(port: int, method: str, target: str, body: bytes = b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_sigterm_answers_in_flight_saves_and_exits_0(waitress_serve):
    port, process, snapshot = waitress_serve
    assert request(port, "GET", "/set?key=kept&value=1")[0] == 204
    answers: list = []
    client = start_slow_request(port, answers)
    process.send_signal(signal.SIGTERM)
    client.join(timeout=30)
    assert process.wait(timeout=30) == 0, finish(process)
    assert answers == [(200, b"finished")]
    items = json.loads(snapshot.read_text())["items"]
    assert ["kept", "1", None] in items


def test_a_value_in_the_url_up_to_the_limit_is_served(waitress_serve):
    port = waitress_serve[0]
    value = "v" * (300 * 1024)  # over waitress's own 256 KiB header limit
    assert request(port, "GET", "/set?" + urlencode({"key": "big", "value": value}))[0] == 204
    assert request(port, "GET", "/get?key=big") == (200, value.encode())


def test_a_body_over_the_limit_is_refused_before_it_is_sent(waitress_serve):
    port = waitress_serve[0]
    too_large = 7 * 1024 * 1024  # past 6 x MAX_VALUE_BYTES + 64 KiB, under waitress's 1 GiB
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % too_large
        )
        # Answered on the announced length alone: waitress's 1 GiB limit waited for it.
        assert read_answers(sock, 1) == [413]
