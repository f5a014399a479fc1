from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest
import redis
from werkzeug.test import Client

from memflask import create_app
from memflask.serve import GracefulServer

# Environment variables memflask reads; each test starts without them.
ENVIRONMENT = ("PORT", "APP_ENV", "SIZE")


ROOT = Path(__file__).resolve().parent.parent  # the checkout, where `python -m memflask` runs


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


class FakeClock:
    """A clock the test moves by hand: Unix seconds, starting at a round number."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in ENVIRONMENT or name.startswith("MEMFLASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# How a contract test's app serves: (backend, hot path on). The Flask view (hot path
# off) runs on the memory store; Redis answers through the hot path.
# How a contract test's app serves: (backend, hot path on, through). The Flask view (hot
# path off) runs on the memory store; Redis answers through the hot path; "waitress"
# sends every request of the test client over a socket to real waitress (in-process, so
# the test's clock and store are the server's).
CONTRACT_SERVING = [
    ("memory", True, "test-client"),
    ("memory", False, "test-client"),
    ("redis", True, "test-client"),
    ("memory", True, "waitress"),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with CONTRACT = True runs every test that uses the app on both backends,
    and with the hot path on and off."""
    if getattr(metafunc.module, "CONTRACT", False) and "backend" in metafunc.fixturenames:
        serving = CONTRACT_SERVING
        names: tuple[str, ...] = ("backend", "hot_path", "through")
        if "through" not in metafunc.fixturenames:  # no `client`: its own way to the app
            serving = [entry[:2] for entry in serving if entry[2] != "waitress"]
            names = names[:2]
        metafunc.parametrize(
            names,
            serving,
            indirect=True,
            ids=[
                f"{entry[0]}-{'hot' if entry[1] else 'flask'}"
                + ("-waitress" if entry[2:] == ("waitress",) else "")
                for entry in serving
            ],
        )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "memory")


@pytest.fixture
def hot_path(request: pytest.FixtureRequest) -> bool:
    """Whether the app serves its verbs through the WSGI-level hot path (the default)."""
    return getattr(request, "param", True)


@pytest.fixture
def through(request: pytest.FixtureRequest) -> str:
    """How the `client` fixture reaches the app: Flask's test client, or real waitress."""
    return getattr(request, "param", "test-client")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.skip("the Redis tests need redis-server (Debian: apt-get install redis-server)")
    port = free_port()
    process = start_redis_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield url
    process.terminate()
    process.wait(timeout=30)


def backend_config(backend: str, request: pytest.FixtureRequest) -> dict:
    """The settings that put an app on `backend`; a Redis app gets a namespace of its own."""
    if backend != "redis":
        return {}
    marker = request.node.get_closest_marker("memory_only")
    if marker:
        pytest.skip(marker.args[0])
    return {
        "STORE_URL": request.getfixturevalue("redis_url"),
        "STORE_PREFIX": f"test-{uuid.uuid4().hex}:",
    }


@pytest.fixture
def app_config() -> dict:
    """Settings a test module adds to its apps (override the fixture in the module)."""
    return {}


@pytest.fixture
def app(
    clock: FakeClock,
    backend: str,
    hot_path: bool,
    app_config: dict,
    request: pytest.FixtureRequest,
):
    config = {
        "TESTING": True,
        "APP_ENV": "production",
        "CLOCK": clock,
        "HOT_PATH": hot_path,
        **app_config,
    }
    app = create_app({**config, **backend_config(backend, request)})
    yield app
    if backend == "redis":
        app.extensions["memflask"].store.flush()


def state_of(store, key: str) -> Optional[tuple]:
    """An item's whole state (value, expiry, version), comparable across backends."""
    item = store.peek(key)
    return None if item is None else (item.value, item.expires_at, item.version)


@pytest.fixture
def client(app, through: str):
    if through == "test-client":
        yield app.test_client()
        return
    with LiveServer(app) as server:
        # The test client's requests, each sent over a socket to waitress as it is.
        yield Client(forwarding_app(server.port), response_wrapper=app.response_class)


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


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def store(app):
    return app.extensions["memflask"].store


class LiveServer:
    """Real waitress serving an app on a free loopback port, in a background thread.

    It is memflask's own GracefulServer, with the production settings.
    """

    def __init__(self, app):
        self.server = GracefulServer(app, host="127.0.0.1", port=0)
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


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server
