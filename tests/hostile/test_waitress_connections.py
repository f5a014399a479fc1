"""Hostile connections on waitress: clients that never read their answers, and requests
framed both by Content-Length and by Transfer-Encoding (request smuggling), the latter
also on granian."""

from __future__ import annotations

import http.client
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from memflask.serving.waitress import GracefulServer
from tests.harness.servers import free_port, serving

MIB = 1024 * 1024
# Each non-reader pipelines 24 /get of a 1 MiB value: 24 MiB of answers, past waitress's
# default output high-water mark (16 MiB), within any answer-size limit.
PIPELINED = 24
NON_READERS = 6  # more than THREADS


@pytest.fixture(params=[1, 4])
def app_config(request) -> dict:
    """One thread (no other to fall back on) and four."""
    return {"THREADS": request.param}


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def healthz_within(port: int, seconds: float) -> bool:
    """Whether a fresh connection's /healthz is answered 200 within `seconds`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:  # the timeout
        return False
    finally:
        connection.close()


def store_a_large_value(port: int) -> bytes:
    """Store a value of almost 1 MiB; return PIPELINED requests for it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", f"/set?key=large&value={'v' * (MIB - 64)}")
        response = connection.getresponse()
        response.read()
        assert response.status == 204
    finally:
        connection.close()
    return b"GET /get?key=large HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * PIPELINED


def open_non_readers(port: int, requests: bytes) -> list[socket.socket]:
    """NON_READERS connections that send `requests` and never read a byte."""
    sockets = []
    for _ in range(NON_READERS):
        sock = connect(port)
        sock.sendall(requests)
        sockets.append(sock)
    return sockets


def read_large_answers(sock: socket.socket, count: int, seconds: float = 30) -> list[int]:
    """Read `count` answers with a Content-Length, `seconds` at most; their status codes."""
    deadline = time.monotonic() + seconds
    sock.settimeout(seconds)
    statuses = []
    with sock.makefile("rb") as stream:
        for _ in range(count):
            head = stream.readline()
            length = 0
            for line in iter(stream.readline, b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            while length > 0 and time.monotonic() < deadline:
                length -= len(stream.read(min(length, MIB)))
            assert length == 0, "the answer was cut short"
            statuses.append(int(head.split()[1]))
    return statuses


def test_clients_that_never_read_hold_no_thread_and_bounded_output(live_server):
    port = live_server.port
    sockets = open_non_readers(port, store_a_large_value(port))
    try:
        time.sleep(0.5)  # their first answers fill the buffers
        # A generous liveness deadline: waitress 3.0 alone hung here for 100 s and more.
        assert healthz_within(port, 10)
        adj = live_server.server.server.adj
        answer = MIB + 1024  # one /get's answer, headers included
        for channel in list(live_server.server.server.active_channels.values()):
            assert channel.total_outbufs_len <= adj.outbuf_high_watermark + answer
        # Whoever reads late still gets every answer, in order.
        assert read_large_answers(sockets[0], PIPELINED) == [200] * PIPELINED
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def server_closing_stalls_after_one_second(app) -> Iterator[GracefulServer]:
    server = GracefulServer(app, host="127.0.0.1", port=0, channel_timeout=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


def test_a_connection_whose_output_stalls_is_closed(server_closing_stalls_after_one_second):
    server = server_closing_stalls_after_one_second
    port = server.port
    sockets = open_non_readers(port, store_a_large_value(port))
    try:
        deadline = time.monotonic() + 15
        while server.server.active_channels and time.monotonic() < deadline:
            time.sleep(0.2)
        # Every stalled connection closed, its output released.
        assert not server.server.active_channels
        assert healthz_within(port, 10)
    finally:
        for sock in sockets:
            sock.close()


# A request framed twice, then a second request that only a server framing by
# Transfer-Encoding reads as one: a proxy framing by Content-Length saw one request.
SMUGGLED = "GET /set?key=smuggled&value=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
FRAMED_TWICE = {
    "HTTP/1.1": (
        "POST /get?key=k HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {5 + len(SMUGGLED)}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n" + SMUGGLED
    ),
    "HTTP/1.0": (
        "POST /get?key=k HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n" + SMUGGLED
    ),
}


def read_until_closed(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `seconds` pass)."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection was left open after {received[:200]!r}")


@pytest.mark.parametrize("version", sorted(FRAMED_TWICE))
def test_content_length_with_transfer_encoding_is_refused_and_closed(live_server, version):
    with connect(live_server.port) as sock:
        sock.sendall(FRAMED_TWICE[version].encode())
        answer = read_until_closed(sock)
    assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    assert answer.count(b"HTTP/1.") == 1  # one answer: the trailing request never ran
    status, _, _ = live_server.request("GET", "/get?key=smuggled")
    assert status == 404


@pytest.mark.parametrize("version", sorted(FRAMED_TWICE))
def test_granian_answers_a_request_framed_twice_once_and_closes(granian_server, version):
    """hyper frames such a request by its Transfer-Encoding alone and closes the connection
    after answering it (RFC 9112 section 6.1 allows both ways): nothing to mend there."""
    with connect(granian_server.port) as sock:
        sock.sendall(FRAMED_TWICE[version].encode())
        answer = read_until_closed(sock)
    assert answer.count(b"HTTP/1.") == 1, answer[:400]
    assert granian_server.store.peek("smuggled") is None


@pytest.fixture
def waitress_serve(tmp_path: Path) -> Iterator[int]:
    """The port of `waitress-serve wsgi:app`, the production command, with its default
    threads (2 on the memory store)."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "MEMFLASK_INSTANCE_PATH": str(tmp_path),
    }
    command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "wsgi:app"]
    with serving(command, port, environment):
        yield port


def test_waitress_serve_wsgi_app_is_protected_alike(waitress_serve):
    port = waitress_serve
    sockets = open_non_readers(port, store_a_large_value(port))
    try:
        time.sleep(0.5)
        assert healthz_within(port, 10)
    finally:
        for sock in sockets:
            sock.close()
    with connect(port) as sock:
        sock.sendall(FRAMED_TWICE["HTTP/1.1"].encode())
        answer = read_until_closed(sock)
    assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    assert get_status(port, "/get?key=smuggled") == 404


def get_status(port: int, target: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
