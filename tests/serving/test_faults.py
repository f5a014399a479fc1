"""Faults and hostile input against real waitress; after each, the data is intact."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from urllib.parse import urlencode

import pytest

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def server(live_server):
    """A live server holding k = "v"; checks afterwards that it still answers, intact."""
    assert live_server.request("GET", "/set?key=k&value=v")[0] == 204
    yield live_server
    status, _, body = live_server.request("GET", "/get?key=k")
    assert (status, body) == (200, b"v"), "the server lost data or stopped answering"
    stats = json.loads(live_server.request("GET", "/stats")[2])
    assert stats["keyCount"] == 1, stats


def open_socket(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def exchange(server, data: bytes) -> bytes:
    """Send raw bytes, half-close, and read whatever the server answers."""
    with open_socket(server) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


# -- half-sent requests --------------------------------------------------------------------


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /set?key=k&value=evil HTTP/1.1\r\nHost: localhost\r\n",
        b"GET /set?key=k&value=evil HTTP/1.1",
        b"GET /set?key=k&val",
        b"POST /set HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: 100\r\n\r\nkey=k&value=evil",
    ],
)
def test_half_sent_request_changes_nothing(server, partial):
    with open_socket(server) as sock:
        sock.sendall(partial)
    # The connection is gone; the next client is served and k is still "v" (fixture).


# -- garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO\r\n\r\n",
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /get?key=k HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"GET /set?key=k&value=evil HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
        b"POST /set HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        b"GET /set?key=k&value=evil HTTP/1.1\r\nHost localhost\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"G" * 70_000 + b"\r\n\r\n",
    ],
)
def test_garbage_is_refused_without_a_5xx(server, garbage):
    answer = exchange(server, garbage)
    assert status_of(answer) < 500, answer[:300]


# -- slow clients -----------------------------------------------------------------------------


def test_slow_clients_holding_connections_do_not_block_others(server):
    held = []
    try:
        for _ in range(50):
            sock = open_socket(server)
            sock.sendall(b"GET /get?key=k HTTP/1.1\r\nHost: localhost\r\n")  # never finished
            held.append(sock)
        for number in range(20):
            assert server.request("GET", f"/set?key=other{number}&value=1")[0] == 204
            assert server.request("GET", f"/delete?key=other{number}")[0] == 204
    finally:
        for sock in held:
            sock.close()


def test_slow_body_does_not_block_others(server):
    with open_socket(server) as sock:
        sock.sendall(
            b"POST /set HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nkey=slow&value="
        )
        for _ in range(5):
            sock.sendall(b"x")
            assert server.request("GET", "/get?key=k")[0] == 200
    assert server.request("GET", "/get?key=slow")[0] == 404


# -- clients that leave mid-response ------------------------------------------------------------


def test_clients_disconnecting_mid_response(server):
    big = "x" * (1024 * 1024 - 10)
    assert (
        server.request("POST", "/set", urlencode({"key": "big", "value": big}).encode(), FORM)[0]
        == 204
    )
    for _ in range(10):
        sock = open_socket(server)
        sock.sendall(b"GET /get?key=big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.recv(100)
        # Abort with a reset rather than a polite close, as a crashed client would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    status, _, body = server.request("GET", "/get?key=big")
    assert (status, len(body)) == (200, len(big))
    assert server.request("GET", "/delete?key=big")[0] == 204


# -- limits ---------------------------------------------------------------------------------------


def test_limits_answer_4xx_and_do_not_slow_others(server):
    """Hostile requests run beside a stream of normal ones, which all keep succeeding."""
    stop = threading.Event()
    normal: list[int] = []

    def normal_traffic() -> None:
        connection = server.connection()
        try:
            while not stop.is_set() and len(normal) < 5000:
                connection.request("GET", "/get?key=k")
                response = connection.getresponse()
                response.read()
                normal.append(response.status)
        finally:
            connection.close()

    worker = threading.Thread(target=normal_traffic)
    worker.start()
    try:
        hostile = [
            # a megabyte of digits as an increment amount
            ("POST", "/increment", urlencode({"key": "n", "value": "9" * 1_000_000}), FORM, 400),
            # thousands of parameters
            ("GET", "/get?" + "&".join(f"p{n}=1" for n in range(5000)) + "&key=k", None, {}, 400),
            # a 100 kB key
            ("GET", "/set?" + urlencode({"key": "k" * 100_000, "value": "1"}), None, {}, 400),
        ]
        for method, target, body, headers, expected in hostile:
            data = body.encode() if isinstance(body, str) else body
            status, _, answer = server.request(method, target, data, headers)
            assert status == expected, answer[:200]
        # A body far over the limit is refused on its Content-Length, before it is read.
        announced = exchange(
            server,
            b"POST /set HTTP/1.1\r\nHost: localhost\r\nContent-Length: 104857600\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nkey=k&value=",
        )
        assert status_of(announced) == 413, announced[:200]
    finally:
        stop.set()
        worker.join(30)
    assert normal and set(normal) == {200}


def test_huge_header_is_refused(server):
    answer = exchange(
        server,
        b"GET /get?key=k HTTP/1.1\r\nHost: localhost\r\nX-Big: "
        + b"a" * (4 * 1024 * 1024)
        + b"\r\n\r\n",
    )
    assert status_of(answer) in (0, 400, 413, 431), answer[:200]


def test_answers_stay_quick_after_the_hostile_requests(server):
    started = time.monotonic()
    for _ in range(50):
        assert server.request("GET", "/get?key=k")[0] == 200
    # Not a timing assertion: a bound that only a hung server would reach.
    assert time.monotonic() - started < 60
