"""Hostile servers against memflask's clients (issue 20, item 14): `timeout` is a deadline
for the whole call, an answer over `max_answer_bytes` is refused rather than read whole,
and a cut answer is an error, never an empty value.

Each server is a plain socket server on 127.0.0.1, one thread a connection, that reads
the request and then misbehaves. Every client memflask ships meets each one: Client,
AsyncClient, the Flask-Caching and Django backends, and the `memflask` command.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Callable, Iterator

import pytest
from flask import Flask
from flask_caching import Cache

from memflask.aio import AsyncClient
from memflask.client import Client, MemflaskError
from memflask.django import MemflaskCache
from tests.harness.servers import ROOT

TIMEOUT = 1.0
# Generous on purpose: what is tested is "the call ends at its deadline", not speed
# (for the command, counted from the moment the server has its request).
BOUND = TIMEOUT + 3.0
LIMIT = 1024 * 1024  # the clients' max_answer_bytes in these tests
# A dripping server sends a byte every DRIP_SECONDS, DRIP_BYTES in all (20 s), then
# closes: long enough that a client without a deadline fails the bound, and bounded.
DRIP_SECONDS = 0.5
DRIP_BYTES = 40
# Built before any memory is measured: 4 x LIMIT, in 16 KiB chunks.
CHUNK = b"x" * 16384
FRAMED_CHUNK = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
CHUNKS = 4 * LIMIT // len(CHUNK)


# -- the hostile servers: each reads the request, then answers its way -----------------


def read_request(connection: socket.socket) -> None:
    received = b""
    while b"\r\n\r\n" not in received and len(received) < 65536:
        data = connection.recv(65536)
        if not data:
            return
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < min(length, 65536):
        data = connection.recv(65536)
        if not data:
            return
        body += data


def drip(connection: socket.socket, stop: threading.Event, data: bytes) -> None:
    for index in range(len(data)):
        if stop.wait(DRIP_SECONDS):
            return
        connection.sendall(data[index : index + 1])


def answer_ok(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def trickle_the_body(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % DRIP_BYTES)
    drip(connection, stop, b"x" * DRIP_BYTES)


def never_finish_the_header_block(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    drip(connection, stop, b"X-Drip: " + b"y" * (DRIP_BYTES - 8))


def announce_a_huge_body(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (512 * 1024 * 1024))
    for _ in range(CHUNKS):
        connection.sendall(CHUNK)


def send_a_huge_body_unannounced(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(CHUNKS):
        connection.sendall(FRAMED_CHUNK)
    connection.sendall(b"0\r\n\r\n")


def send_a_huge_chunked_body_announced_small(
    connection: socket.socket, stop: threading.Event
) -> None:
    # Both framings: HTTP says chunked wins, so the small Content-Length bounds nothing.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
    connection.sendall(head)
    for _ in range(CHUNKS):
        connection.sendall(FRAMED_CHUNK)
    connection.sendall(b"0\r\n\r\n")


def cut_the_body(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)


def cut_the_header_block(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")


Behaviour = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """Serves `behaviour` to every connection (at most 20) until the test ends."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.requested_at: list[float] = []  # time.monotonic() as each request was read

    def __enter__(self) -> HostileServer:
        self.threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in list(self.threads):
            thread.join(timeout=10)
        self.listener.close()
        assert not any(thread.is_alive() for thread in self.threads)

    def _accept(self) -> None:
        for _ in range(20):
            while not self.stop.is_set():
                try:
                    connection, _ = self.listener.accept()
                    break
                except socket.timeout:
                    continue
            else:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                read_request(connection)
                self.requested_at.append(time.monotonic())
                self.behaviour(connection, self.stop)
            except OSError:
                pass  # the client gave up: what it should do


# -- the clients, each asked for a value with TIMEOUT and LIMIT ---------------------------


def with_client(url: str) -> object:
    with Client(url, timeout=TIMEOUT, max_answer_bytes=LIMIT) as client:
        return client.get("k")


def with_async_client(url: str) -> object:
    async def get() -> object:
        async with AsyncClient(url, timeout=TIMEOUT, max_answer_bytes=LIMIT) as client:
            return await client.get("k")

    return asyncio.run(get())


def with_flask_caching(url: str) -> object:
    config = {
        "CACHE_TYPE": "memflask.caching.MemflaskCache",
        "CACHE_MEMFLASK_URL": url,
        "CACHE_MEMFLASK_TIMEOUT": TIMEOUT,
        "CACHE_MEMFLASK_MAX_ANSWER_BYTES": LIMIT,
    }
    app = Flask(__name__)
    return Cache(app, config=config).get("k")


def with_django(url: str) -> object:
    options = {"timeout": TIMEOUT, "max_answer_bytes": LIMIT}
    cache = MemflaskCache(url, {"OPTIONS": options})
    try:
        return cache.get("k")
    finally:
        cache.client.close()


CLIENTS = {
    "Client": with_client,
    "AsyncClient": with_async_client,
    "flask_caching": with_flask_caching,
    "django": with_django,
}

# attack -> the error code the call must fail with
ATTACKS = {
    "trickled_body": (trickle_the_body, "timeout"),
    "endless_header_block": (never_finish_the_header_block, "timeout"),
    "announced_huge_body": (announce_a_huge_body, "answer_too_large"),
    "unannounced_huge_body": (send_a_huge_body_unannounced, "answer_too_large"),
    "chunked_huge_body_announced_small": (
        send_a_huge_chunked_body_announced_small,
        "answer_too_large",
    ),
    "cut_body": (cut_the_body, "connection_error"),
    "cut_header_block": (cut_the_header_block, "connection_error"),
}


@pytest.fixture(params=list(ATTACKS))
def attack(request: pytest.FixtureRequest) -> Iterator[tuple[HostileServer, str]]:
    behaviour, code = ATTACKS[request.param]
    with HostileServer(behaviour) as server:
        yield server, code


@pytest.mark.parametrize("call", list(CLIENTS.values()), ids=list(CLIENTS))
def test_each_client_fails_at_its_deadline_and_limit(call, attack):
    server, code = attack
    with HostileServer(answer_ok) as honest:  # warms the client's imports up, too
        assert call(honest.url) in ("ok", b"ok")
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(MemflaskError) as raised:
            call(server.url)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert raised.value.code == code, raised.value
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    # The refused answer was never held whole: at most the limit and a few chunks.
    assert peak < 2 * LIMIT, f"{peak:,} bytes"


def test_the_command_exits_4_with_one_line(attack):
    server, code = attack
    command = [sys.executable, "-m", "memflask.cli", "get", "k", "--url", server.url]
    command += ["--timeout", str(TIMEOUT), "--max-answer-bytes", str(LIMIT)]
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    # From the request's arrival, not the command's start: starting Python is not the call.
    elapsed = time.monotonic() - server.requested_at[0]
    assert (result.returncode, result.stdout) == (4, ""), result.stderr
    assert result.stderr.count("\n") == 1 and f" {code})" in result.stderr, result.stderr
    assert elapsed < BOUND, f"{elapsed:.1f} s"


def attack_twice_then_answer() -> Behaviour:
    """The first connection gets an oversized answer, the second a trickle, the rest "ok"."""
    attacks = iter([send_a_huge_body_unannounced, trickle_the_body])

    def behaviour(connection: socket.socket, stop: threading.Event) -> None:
        next(attacks, answer_ok)(connection, stop)

    return behaviour


def test_a_client_stays_usable_after_a_refused_answer():
    """A refused answer's connection is closed, not pooled: the next call gets its own."""
    with HostileServer(attack_twice_then_answer()) as server:
        client = Client(server.url, timeout=TIMEOUT, max_answer_bytes=LIMIT)
        for code in ("answer_too_large", "timeout"):
            with pytest.raises(MemflaskError) as raised:
                client.get("k")
            assert raised.value.code == code
        assert client.get("k") == "ok"
        client.close()


def test_an_async_client_stays_usable_after_a_refused_answer():
    async def calls(url: str) -> list[str]:
        outcomes = []
        async with AsyncClient(url, timeout=TIMEOUT, max_answer_bytes=LIMIT) as client:
            for _ in range(3):
                try:
                    outcomes.append(await client.get("k"))
                except MemflaskError as error:
                    outcomes.append(error.code)
        return outcomes

    with HostileServer(attack_twice_then_answer()) as server:
        assert asyncio.run(calls(server.url)) == ["answer_too_large", "timeout", "ok"]
