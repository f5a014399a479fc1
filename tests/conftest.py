"""The fixtures every test folder uses: a clean environment, the test clock, an app on a
backend (memory, Redis, a Redis Cluster) with the hot path on or off, and the ways a test
client reaches it (Flask's test client, real waitress, real granian). The servers behind
them are in tests/harness/; tests/contract/conftest.py runs its tests on every backend."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import Iterator

import pytest
import redis
from werkzeug.test import Client

from memflask import create_app
from tests.harness.clock import FakeClock
from tests.harness.servers import (
    GranianServer,
    LiveServer,
    forwarding_app,
    free_port,
    start_redis_server,
)

# Environment variables memflask reads; each test starts without them.
ENVIRONMENT = ("PORT", "APP_ENV", "SIZE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in ENVIRONMENT or name.startswith("MEMFLASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
    from tests.harness.clusters import cluster  # it imports this module's free_port

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


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def store(app, through: str, request: pytest.FixtureRequest):
    """The store the `client` fixture's requests reach (granian's: read from its worker)."""
    if through == "granian":
        return request.getfixturevalue("granian_server").store
    return app.extensions["memflask"].store


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


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
