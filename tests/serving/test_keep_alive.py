"""Keep-alive on every answer: 204 and 304 leave the connection open, pipelined requests
are all answered in order and all applied, on every way of serving with waitress."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

from memflask.client import Client
from tests.harness.servers import ROOT, free_port, wait_until_serving

PIPELINED = 50


def read_answers(sock: socket.socket, count: int, timeout: float = 10) -> list[int]:
    """Read `count` bodiless-or-sized HTTP/1.1 answers; return their status codes."""
    sock.settimeout(timeout)
    buffer = b""
    statuses = []
    deadline = time.monotonic() + timeout
    while len(statuses) < count:
        head, separator, rest = buffer.partition(b"\r\n\r\n")
        if separator:
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                statuses.append(int(lines[0].split()[1]))
                buffer = rest[length:]
                continue
        assert time.monotonic() < deadline, f"only {len(statuses)} answers of {count}"
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {len(statuses)} answers"
        buffer += chunk
    return statuses


def pipeline(port: int, requests: list[bytes]) -> list[int]:
    """Send every request in one write on one connection; return the answers' statuses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(requests))
        return read_answers(sock, len(requests))


def get(target: str, headers: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


def check_keep_alive(port: int) -> None:
    """Two writes, a 304 and a read on one connection; 50 writes and 50 304s pipelined."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/set?key=first&value=1")
        answer = connection.getresponse()
        answer.read()
        sock = connection.sock
        assert answer.status == 204
        assert answer.getheader("Connection") is None
        connection.request("GET", "/set?key=second&value=2")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 204 and answer.getheader("Connection") is None
        tag = answer.getheader("ETag")
        connection.request("GET", "/get?key=second", headers={"If-None-Match": tag})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 304 and answer.getheader("Connection") is None
        connection.request("GET", "/get?key=first")
        answer = connection.getresponse()
        assert answer.read() == b"1"
        assert connection.sock is sock, "the connection was not reused"
    finally:
        connection.close()

    writes = [get(f"/set?key=piped{index}&value={index}") for index in range(PIPELINED)]
    assert pipeline(port, writes) == [204] * PIPELINED
    reads = [get(f"/get?key=piped{index}") for index in range(PIPELINED)]
    assert pipeline(port, reads) == [200] * PIPELINED  # all applied
    tag = f'If-None-Match: "{etag(port, "piped0")}"\r\n'
    not_modified = [get("/get?key=piped0", tag)] * PIPELINED
    assert pipeline(port, not_modified) == [304] * PIPELINED


def etag(port: int, key: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", f"/get?key={key}")
        return connection.getresponse().getheader("ETag").strip('"')
    finally:
        connection.close()


def test_a_client_closing_the_connection_still_gets_it_closed(live_server):
    connection = live_server.connection()
    try:
        connection.request("GET", "/set?key=k&value=v", headers={"Connection": "close"})
        answer = connection.getresponse()
        assert answer.status == 204
        assert answer.getheader("Connection") == "close"
    finally:
        connection.close()


def test_keep_alive_in_process(live_server):
    check_keep_alive(live_server.port)


@pytest.fixture(params=["python -m memflask", "waitress-serve wsgi:app"])
def served_port(request) -> Iterator[int]:
    """A real server process of each production entry point, on a free port."""
    port = free_port()
    if request.param == "python -m memflask":
        command = [sys.executable, "-m", "memflask"]
    else:
        command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "wsgi:app"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={"PORT": f":{port}", "APP_ENV": "production", "PATH": os.environ.get("PATH", "")},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_keep_alive_on_each_production_entry_point(served_port):
    check_keep_alive(served_port)


def test_the_client_makes_one_connection_for_a_thousand_writes(live_server):
    server = live_server.server.server
    accepted = []
    make_channel = server.channel_class

    def counting_channel(*args, **kwargs):
        accepted.append(args[2])  # the client's address
        return make_channel(*args, **kwargs)

    server.channel_class = counting_channel
    with Client(f"http://127.0.0.1:{live_server.port}") as cache:
        for index in range(1000):
            cache.set(f"key{index}", str(index))
        assert cache.get("key999") == "999"
    assert len(accepted) == 1, f"{len(accepted)} connections for 1,001 requests"
