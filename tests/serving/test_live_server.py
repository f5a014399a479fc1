"""Real waitress on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

import pytest

from memflask import __version__, create_app
from tests.harness.servers import ROOT, LiveServer, free_port

FORM = "application/x-www-form-urlencoded"
# Bounds for the load loops: enough to expose a lost update, short on any machine.
THREADS = 8
INCREMENTS_PER_THREAD = 250
DEADLINE_SECONDS = 60


def test_set_get_over_real_http(live_server):
    status, _, _ = live_server.request("GET", "/set?key=greeting&value=hello%20world")
    assert status == 204
    status, headers, body = live_server.request("GET", "/get?key=greeting")
    assert status == 200
    assert body == b"hello world"
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["ETag"]


def test_json_body_over_real_http(live_server):
    body = json.dumps({"key": "k", "value": "v"}).encode()
    status, _, _ = live_server.request("POST", "/set", body, {"Content-Type": "application/json"})
    assert status == 204
    assert live_server.request("GET", "/get?key=k")[2] == b"v"


def test_invalid_utf8_over_real_http_is_refused_and_stores_nothing(live_server):
    status, headers, body = live_server.request("GET", "/set?key=bad%FF&value=no")
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "invalid_encoding"
    assert json.loads(live_server.request("GET", "/stats")[2])["keyCount"] == 0


def test_raw_non_ascii_in_the_request_line_is_refused_by_waitress(live_server):
    """Waitress answers unescaped non-ASCII bytes itself ("Bad URI"), before memflask runs."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /set?key=caf\xc3\xa9&value=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    assert json.loads(live_server.request("GET", "/stats")[2])["keyCount"] == 0
    # The same key percent-escaped, as every HTTP client sends it, works.
    assert live_server.request("GET", "/set?key=caf%C3%A9&value=ok")[0] == 204
    assert live_server.request("GET", "/get?key=caf%C3%A9")[2] == b"ok"


def test_keep_alive_connection_serves_many_requests(live_server):
    connection = live_server.connection()
    try:
        for number in range(50):
            connection.request("GET", f"/set?key=k{number}&value={number}")
            response = connection.getresponse()
            response.read()
            assert response.status == 204
        connection.request("GET", "/stats")
        assert json.loads(connection.getresponse().read())["keyCount"] == 50
    finally:
        connection.close()


def test_concurrent_increments_through_http_lose_nothing(live_server):
    errors: list[str] = []
    deadline = time.monotonic() + DEADLINE_SECONDS

    def worker() -> None:
        connection = live_server.connection()
        try:
            for _ in range(INCREMENTS_PER_THREAD):
                if time.monotonic() > deadline:
                    errors.append("deadline passed")
                    return
                connection.request("POST", "/increment?key=counter&value=1")
                response = connection.getresponse()
                response.read()
                if response.status != 204:
                    errors.append(f"status {response.status}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 5)
    assert errors == []
    status, _, body = live_server.request("GET", "/get?key=counter")
    assert status == 200
    assert int(body) == THREADS * INCREMENTS_PER_THREAD


def test_acknowledged_write_is_visible_to_the_next_read_on_another_connection(live_server):
    for number in range(100):
        assert live_server.request("GET", f"/set?key=k&value={number}")[0] == 204
        assert live_server.request("GET", "/get?key=k")[2] == str(number).encode()


def test_injected_clock_drives_expiry_in_the_server_thread(clock):
    # freezegun does not reach waitress's worker threads; the injected clock does.
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    with LiveServer(app) as server:
        server.request("GET", "/set?key=k&value=v&ttl=10")
        clock.tick(9)
        assert server.request("GET", "/get?key=k")[0] == 200
        clock.tick(1)
        assert server.request("GET", "/get?key=k")[0] == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS"])
def test_other_methods_get_json_405_from_real_waitress(live_server, method):
    status, _, body = live_server.request(method, "/set?key=k&value=v")
    assert status == 405
    assert json.loads(body)["error"] == "method_not_allowed"
    assert live_server.request("GET", "/get?key=k")[0] == 404


@pytest.mark.parametrize("entry", ["module", "waitress-serve"])
def test_served_process_answers_and_logs_each_request_once(entry):
    """`python -m memflask` (PORT in the original's `:8000` form) and `waitress-serve wsgi:app`."""
    port = free_port()
    if entry == "module":
        command = [sys.executable, "-m", "memflask"]
    else:
        command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "wsgi:app"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={"PORT": f":{port}", "PATH": os.environ.get("PATH", "")},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/set?key=probe&value=1")
                assert connection.getresponse().status == 204
                connection.close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert stderr.count("GET /set 204 ") == 1, stderr
    startup = f"memflask {__version__} serving http://127.0.0.1:{port} (memory store, "
    assert stderr.count(startup) == 1, stderr
    assert "probe" not in stderr  # the request log never shows keys or values


@pytest.mark.parametrize("kind", ["query", "form", "json"])
def test_every_body_kind_carries_a_max_size_value_through_waitress(live_server, kind):
    value = "é" * (512 * 1024)  # exactly MAX_VALUE_BYTES (1 MiB) of UTF-8
    fields = {"key": kind, "value": value}
    if kind == "query":
        status = live_server.request("GET", "/set?" + urlencode(fields))[0]
    elif kind == "form":
        body = urlencode(fields).encode()
        status = live_server.request("POST", "/set", body, {"Content-Type": FORM})[0]
    else:
        body = json.dumps(fields).encode()  # ASCII-escaped: 6 bytes per character
        status = live_server.request("POST", "/set", body, {"Content-Type": "application/json"})[0]
    assert status == 204
    assert live_server.request("GET", f"/get?key={kind}")[2].decode() == value
