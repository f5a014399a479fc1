"""Real servers on free loopback ports: memflask processes, waitress in a thread, granian
in a process of its own, redis-server; and a WSGI app that forwards requests to one."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlencode

from memflask.serving.waitress import GracefulServer
from memflask.store import Item

ROOT = Path(__file__).resolve().parents[2]  # the checkout, where `python -m memflask` runs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis_server(port: int, *options: str) -> subprocess.Popen:
    """A throwaway redis-server on loopback: no persistence, nothing written to disk.

    `options` are more redis-server arguments (`--enable-debug-command`, `local`).
    """
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        *options,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def wait_until_serving(port: int, process: subprocess.Popen) -> None:
    """Wait (30 s at most) until a memflask process answers /healthz on `port`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    raise AssertionError("the server did not start")


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    """Wait (30 s at most) until `port` accepts connections: the process's socket is bound."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port}")


@contextlib.contextmanager
def serving(command: list[str], port: int, environment: dict) -> Iterator[subprocess.Popen]:
    """A memflask server process run from the checkout, answering on `port`; stopped after."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_serving(port, process)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding"}


def forwarding_app(port: int):
    """A WSGI app that sends each request to 127.0.0.1:`port` and answers what came back."""

    def forward(environ, start_response):
        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").title()] = environ[name]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            # The path as the client sent it (escapes kept), then the query string.
            target = environ["REQUEST_URI"].partition("?")[0]
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
            connection.putrequest(
                environ["REQUEST_METHOD"], target, skip_host=True, skip_accept_encoding=True
            )
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        kept = [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", kept)
        return [answer]

    return forward


class LiveServer:
    """Real waitress serving an app on a free loopback port, in a background thread.

    It is memflask's own GracefulServer, with the production settings.
    """

    def __init__(self, app, port: int = 0):
        self.server = GracefulServer(app, host="127.0.0.1", port=port)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server did not stop"

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self, method: str, target: str, body: Optional[bytes] = None, headers: Optional[dict] = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        connection = self.connection()
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()


class GranianServer:
    """A real granian process serving tests/harness/granian_app.py on a free loopback port.

    It serves an app built with `settings` (an `app` fixture's, but the clock), in
    memflask's own granian settings; `reset` gives it a fresh app before each test.
    """

    def __init__(self, settings: dict, log_path: Path):
        from tests.harness.granian_app import SETTINGS_VARIABLE

        self.port = free_port()
        self.secret = uuid.uuid4().hex
        self.log_path = log_path
        config = {**settings, "HOST": "127.0.0.1", "PORT": self.port}
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            # The settings as JSON; the clock starts where reset puts it.
            SETTINGS_VARIABLE: json.dumps({"config": config, "now": 0.0, "secret": self.secret}),
        }
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.harness.granian_app"],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: the worker is stopped with granian at the end.
                start_new_session=True,
            )
        try:
            wait_until_serving(self.port, self.process)
        except AssertionError:
            self.stop()
            raise AssertionError(f"granian did not start: {self.log()}") from None
        self.store = RemoteStore(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def control(self, method: str, action: str, **params: object) -> object:
        """One control request to the worker (tests/harness/granian_app.py); its JSON answer."""
        from tests.harness.granian_app import CONTROL_PATH, SECRET_HEADER

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(
                method,
                f"{CONTROL_PATH}{action}?{urlencode(params)}",
                headers={SECRET_HEADER: self.secret},
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status in (200, 204), (response.status, body, self.log())
        return json.loads(body) if body else None

    def reset(self, now: float) -> None:
        """A fresh app in the worker (new store and counters), its clock at `now`."""
        self.control("POST", "reset", now=repr(now))

    def move_clock(self, now: float) -> None:
        self.control("POST", "clock", now=repr(now))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # a worker left behind
        self.process.wait(timeout=30)


class RemoteStore:
    """What the contract tests read of a store (peek, stats), read from granian's worker."""

    def __init__(self, server: GranianServer):
        self.server = server

    def peek(self, key: str) -> Optional[Item]:
        found = self.server.control("GET", "peek", key=key)
        if found is None:
            return None
        item = Item(found["value"], found["expires_at"])
        item.version = found["version"]
        return item

    def stats(self) -> dict:
        return self.server.control("GET", "stats")


def state_of(store, key: str) -> Optional[tuple]:
    """An item's whole state (value, expiry, version), comparable across backends."""
    item = store.peek(key)
    return None if item is None else (item.value, item.expires_at, item.version)
