from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlencode

import pytest
import redis
from werkzeug.test import Client

from memflask import create_app
from memflask.serving.waitress import GracefulServer
from memflask.store import Item

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


class FakeClock:
    """A clock the test moves by hand: Unix seconds, starting at a round number.

    `follower`, when set, is called with every new time: a server in another process
    keeps its clock with the test's (see GranianServer).
    """

    def __init__(self, now: float = 1_700_000_000.0):
        self.follower: Optional[Callable[[float], None]] = None
        self.now = now
        # How far the wall clock was stepped (step_wall) apart from the time that passed.
        self.wall_steps = 0.0

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, now: float) -> None:
        self._now = now
        if self.follower is not None:
            self.follower(now)

    def __call__(self) -> float:
        return self._now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        """Seconds that passed (tick, or `now` set), which no step of the wall clock moves."""
        return self._now - self.wall_steps

    def server_time(self) -> float:
        """Redis's clock in a test: the time, with none of this host's wall-clock steps."""
        return self.monotonic()

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock alone, as an administrator or NTP does; no time passes."""
        self.wall_steps += seconds
        self.now += seconds


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in ENVIRONMENT or name.startswith("MEMFLASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# How a contract test's app serves: (backend, hot path on, through). The Flask view (hot
# path off) runs on the memory store; Redis (one server, and a 3-primary Redis Cluster)
# answers through the hot path; "waitress"
# sends every request of the test client over a socket to real waitress (in-process, so
# the test's clock and store are the server's); "granian" sends them to a real granian
# process serving an app with the test's settings, its clock kept with the test's.
CONTRACT_SERVING = [
    ("memory", True, "test-client"),
    ("memory", False, "test-client"),
    ("redis", True, "test-client"),
    ("redis-cluster", True, "test-client"),
    ("memory", True, "waitress"),
    ("memory", True, "granian"),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with CONTRACT = True runs every test that uses the app on both backends,
    with the hot path on and off, and through real servers."""
    if getattr(metafunc.module, "CONTRACT", False) and "backend" in metafunc.fixturenames:
        serving = CONTRACT_SERVING
        names: tuple[str, ...] = ("backend", "hot_path", "through")
        if "through" not in metafunc.fixturenames:  # no `client`: its own way to the app
            serving = [entry[:2] for entry in serving if entry[2] == "test-client"]
            names = names[:2]
        metafunc.parametrize(
            names,
            serving,
            indirect=True,
            ids=[
                f"{entry[0]}-{'hot' if entry[1] else 'flask'}"
                + (f"-{entry[2]}" if entry[2:] and entry[2] != "test-client" else "")
                for entry in serving
            ],
        )


# Contract tests whose request granian refuses, as the README says (Serving): each still
# runs through granian and must fail there (strict), so the README is told when it no
# longer holds.
GRANIAN_REFUSES = {
    "tests/test_more_verbs.py::test_every_body_kind_accepts_values_up_to_max_value_bytes"
    "[memory-hot-granian-query]": "granian (hyper) refuses a URL over 64 KiB with 414: "
    "a 1 MiB value goes in a POST body (tests/test_granian.py checks the 414)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = GRANIAN_REFUSES.get(item.nodeid)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, raises=AssertionError, strict=True))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "memory")


@pytest.fixture
def hot_path(request: pytest.FixtureRequest) -> bool:
    """Whether the app serves its verbs through the WSGI-level hot path (the default)."""
    return getattr(request, "param", True)


@pytest.fixture
def through(request: pytest.FixtureRequest) -> str:
    """How the `client` fixture reaches the app: Flask's test client, real waitress or
    real granian."""
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


# Redis backends -> the session fixture that starts their server(s).
REDIS_BACKENDS = {"redis": "redis_url", "redis-cluster": "redis_cluster_url"}


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-primary Redis Cluster on loopback ports, for the contract suite."""
    from .clusters import cluster  # it imports this module's free_port

    with cluster(tmp_path_factory.mktemp("contract-cluster"), masters=3, replicas=0) as started:
        yield started.url


def backend_config(backend: str, request: pytest.FixtureRequest) -> dict:
    """The settings that put an app on `backend`; a Redis app gets a namespace of its own."""
    server = REDIS_BACKENDS.get(backend)
    if server is None:
        return {}
    marker = request.node.get_closest_marker("memory_only")
    if marker:
        pytest.skip(marker.args[0])
    return {
        "STORE_URL": request.getfixturevalue(server),
        "STORE_PREFIX": f"test-{uuid.uuid4().hex}:",
    }


@pytest.fixture
def app_config() -> dict:
    """Settings a test module adds to its apps (override the fixture in the module)."""
    return {}


@pytest.fixture
def app_settings(
    backend: str, hot_path: bool, app_config: dict, request: pytest.FixtureRequest
) -> dict:
    """The `app` fixture's settings but its clock."""
    return {
        "TESTING": True,
        "APP_ENV": "production",
        "HOT_PATH": hot_path,
        **app_config,
        **backend_config(backend, request),
    }


@pytest.fixture
def app(clock: FakeClock, backend: str, app_settings: dict):
    app = create_app({**app_settings, "CLOCK": clock})
    yield app
    if backend in REDIS_BACKENDS:
        app.extensions["memflask"].store.flush()


def state_of(store, key: str) -> Optional[tuple]:
    """An item's whole state (value, expiry, version), comparable across backends."""
    item = store.peek(key)
    return None if item is None else (item.value, item.expires_at, item.version)


@pytest.fixture
def client(app, through: str, request: pytest.FixtureRequest):
    if through == "test-client":
        yield app.test_client()
        return
    if through == "granian":
        # The test client's requests, each sent over a socket to granian as it is.
        served = request.getfixturevalue("granian_server")
        yield Client(forwarding_app(served.port), response_wrapper=app.response_class)
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
def store(app, through: str, request: pytest.FixtureRequest):
    """The store the `client` fixture's requests reach (granian's: read from its worker)."""
    if through == "granian":
        return request.getfixturevalue("granian_server").store
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


class GranianServer:
    """A real granian process serving tests/granian_app.py on a free loopback port.

    It serves an app built with `settings` (an `app` fixture's, but the clock), in
    memflask's own granian settings; `reset` gives it a fresh app before each test.
    """

    def __init__(self, settings: dict, log_path: Path):
        from .granian_app import SETTINGS_VARIABLE

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
                [sys.executable, "-m", "tests.granian_app"],
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
        """One control request to the worker (tests/granian_app.py); its JSON answer."""
        from .granian_app import CONTROL_PATH, SECRET_HEADER

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


@pytest.fixture(scope="session")
def granian_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The granian processes started in this session, one per distinct app settings."""
    pytest.importorskip(
        "granian", reason="granian is an optional extra: pip install memflask[granian]"
    )
    servers: dict[str, GranianServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def granian_server(
    app_settings: dict,
    clock: FakeClock,
    granian_servers: dict,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GranianServer]:
    """A granian process serving a fresh app with the test's settings, its clock the test's."""
    try:
        key = json.dumps(app_settings, sort_keys=True)
    except TypeError as error:
        raise AssertionError(f"granian gets the app's settings as JSON: {error}") from None
    if key not in granian_servers:
        log_path = tmp_path_factory.mktemp("granian") / "granian.log"
        granian_servers[key] = GranianServer(app_settings, log_path)
    server = granian_servers[key]
    server.reset(clock.now)
    clock.follower = server.move_clock
    yield server
    clock.follower = None
