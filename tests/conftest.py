from __future__ import annotations

import http.client
import os
import threading
from typing import Iterator, Optional

import pytest

from memflask import create_app
from memflask.serve import GracefulServer

# Environment variables memflask reads; each test starts without them.
ENVIRONMENT = ("PORT", "APP_ENV", "SIZE")


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


@pytest.fixture
def app(clock: FakeClock):
    return create_app({"TESTING": True, "APP_ENV": "production", "CLOCK": clock})


@pytest.fixture
def client(app):
    return app.test_client()


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
