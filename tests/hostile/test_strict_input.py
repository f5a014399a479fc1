"""Strict input (issue 20): condition headers, Host, JSON encodings, snapshot files, the log.

Each attack runs on real servers on 127.0.0.1 (waitress in this process, a granian
process), bounded in count and time: while it runs, a fresh /healthz must be answered
within LIVENESS_SECONDS, and it must itself be answered with a clear error.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memflask import create_app
from memflask.core import headers
from memflask.core.access import Access
from memflask.core.errors import Refusal
from memflask.core.fields import JSON_TOKENS_PER_FIELD, MAX_JSON_DEPTH, check_json_structure
from memflask.core.headers import Conditions
from memflask.store import MemoryStore, snapshot
from tests.harness.servers import ROOT, LiveServer, free_port, wait_until_serving

# Generous: today's main froze /healthz for 46 s (40,000 spaces in If-Match).
LIVENESS_SECONDS = 10
# The longest If-Match or If-None-Match parsed (memflask.core.headers, README).
MAX_CONDITION_HEADER_CHARS = 8 * 1024
ATTACK_SECONDS = 120
MIB = 1024 * 1024
JSON = "application/json"


@pytest.fixture(params=["waitress", "granian"])
def served(request: pytest.FixtureRequest) -> int:
    """The port of a real server on the `app` fixture's settings: waitress or granian."""
    if request.param == "granian":
        return request.getfixturevalue("granian_server").port
    return request.getfixturevalue("live_server").port


def call(
    port: int,
    method: str,
    target: str,
    headers: Optional[dict] = None,
    body: Optional[bytes] = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]


def attack_while_probing(port: int, attack: Callable[[], Any]) -> tuple[Any, float]:
    """Run `attack` in a thread and a fresh /healthz meanwhile: (the attack's result, the
    longer of the two's durations in seconds)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = attack()
        except Exception as error:  # reported below, in the test's thread
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.5)  # let the attack reach the server first
    started = time.monotonic()
    status, _ = call(port, "GET", "/healthz", timeout=ATTACK_SECONDS)
    healthz_seconds = time.monotonic() - started
    thread.join(timeout=ATTACK_SECONDS)
    assert not thread.is_alive(), "the attack was not answered"
    assert "error" not in outcome, outcome.get("error")
    assert status == 200
    return outcome["result"], max(healthz_seconds, outcome["seconds"])


# -- item 1: If-Match and If-None-Match are parsed in linear time, and bounded ---------------

PATHOLOGICAL_CONDITIONS = {
    "spaces": "x" + " " * 40_000 + "x",
    "tabs after a tag": '"1"' + "\t" * 40_000 + "x",
    "no-break spaces": "x" + "\xa0" * 40_000 + "x",
    "spaces then a quote": "x" + " " * 40_000 + '"',
}


@pytest.mark.parametrize(
    "target, header", [("/set?key=k&value=v", "If-Match"), ("/get?key=k", "If-None-Match")]
)
@pytest.mark.parametrize(
    "value", PATHOLOGICAL_CONDITIONS.values(), ids=PATHOLOGICAL_CONDITIONS.keys()
)
def test_a_pathological_condition_header_is_refused_at_once(request, served, target, header, value):
    if not value.isascii() and request.node.callspec.params["served"] == "granian":
        pytest.skip("granian hands the app an empty value for a header that is not ASCII")
    assert call(served, "GET", "/set?key=k&value=before")[0] == 204
    (status, body), seconds = attack_while_probing(
        served, lambda: call(served, "GET", target, {header: value}, timeout=ATTACK_SECONDS)
    )
    assert seconds < LIVENESS_SECONDS
    assert status == 400 and error_code(body) == "header_too_long"
    assert call(served, "GET", "/get?key=k") == (200, b"before")


@pytest.mark.parametrize("target", ["/set?key=k&value=v", "/get?key=k"])
def test_a_condition_header_within_the_cap_still_works(served, target):
    """8 KiB of spaces around a tag: parsed (quickly), the tag still found."""
    assert call(served, "GET", "/set?key=k&value=v")[0] == 204
    tag = etag_of(served, "k")
    padding = " " * ((MAX_CONDITION_HEADER_CHARS - len(tag) - 8) // 2)
    value = f"x,{padding}{tag}{padding}"
    assert len(value) <= MAX_CONDITION_HEADER_CHARS
    header = "If-Match" if target.startswith("/set") else "If-None-Match"
    status, _ = call(served, "GET", target, {header: value})
    assert status == (204 if header == "If-Match" else 304)


def etag_of(port: int, key: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", f"/get?key={key}")
        response = connection.getresponse()
        response.read()
        return response.getheader("ETag")
    finally:
        connection.close()


# The parser before issue 20: findall of this pattern, quadratic over whitespace.
QUADRATIC_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


def tags_as_before(header: Optional[str], weak_matches: bool) -> Optional[frozenset[str]]:
    if header is None:
        return None
    if header.strip() == "*":
        return frozenset("*")
    found = QUADRATIC_ENTITY_TAG.findall(header)
    return frozenset(tag for weak, tag in found if weak_matches or not weak)


VALID_CONDITIONS = [
    "*",
    " * ",
    '"1"',
    'W/"1"',
    '"1", "2"',
    '"1","2",W/"3"',
    ' "1" ,\tW/"2" , "3"',
    '"1",,"2", ',
    '""',
    '"*"',
    '"a b", "c,d"',
]


@pytest.mark.parametrize("header", VALID_CONDITIONS)
def test_valid_condition_headers_mean_what_they_meant(header):
    assert Conditions.from_headers(header, header) == (
        tags_as_before(header, weak_matches=False),
        tags_as_before(header, weak_matches=True),
    )


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=' \t\xa0W/",1*a', max_size=40))
def test_any_condition_header_finds_the_tags_it_found_before(header):
    """The linear parser finds the same tags as the quadratic one, whatever the header."""
    assert Conditions.from_headers(header, header) == (
        tags_as_before(header, weak_matches=False),
        tags_as_before(header, weak_matches=True),
    )


def test_a_condition_header_over_the_cap_is_refused():
    with pytest.raises(Refusal) as refused:
        Conditions.from_headers('"1"' + " " * MAX_CONDITION_HEADER_CHARS, None)
    assert refused.value.status == 400 and refused.value.code == "header_too_long"
    assert "If-Match" in refused.value.message
    assert headers.MAX_CONDITION_HEADER_CHARS == MAX_CONDITION_HEADER_CHARS


# -- item 2: a refused Host is not remembered --------------------------------------------------

# 1 MiB each rather than 3: waitress's header parsing takes time quadratic in a header's
# size (it joins and searches the whole buffer on every read), which is not the point here.
HOST_REQUESTS = 100
HOST_BYTES = MIB
MAX_RSS_GROWTH = 64 * MIB  # today's main: about 200 MiB more (each Host kept twice), kept


def resident_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024


def refused_for_its_host(port: int, index: int) -> int:
    host = f"{index:06d}".encode() + b"h" * (HOST_BYTES - 6)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_distinct_long_hosts_refused_before_the_token_leave_memory_bounded(tmp_path):
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "PORT": str(port),
        "MEMFLASK_TOKEN": "secret",
    }
    server = subprocess.Popen([sys.executable, "-m", "memflask"], cwd=ROOT, env=environment)
    try:
        wait_until_serving(port, server)
        for index in range(3):  # waitress's own buffers for such a request, once
            assert refused_for_its_host(port, index) == 403
        before = resident_bytes(server.pid)
        for index in range(3, 3 + HOST_REQUESTS):
            assert refused_for_its_host(port, index) == 403
        growth = resident_bytes(server.pid) - before
        assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / MIB:.0f} MiB"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_host_as_long_as_a_dns_name_is_still_allowed():
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    access = Access.from_settings(None, [name], [])
    access.check_host(f"{name}:65535")
    with pytest.raises(Refusal) as refused:
        access.check_host(f"{name}x:65535")
    assert refused.value.status == 403


# -- item 10: a FIFO (or any file but a regular one) at SNAPSHOT_PATH never blocks start-up ----


def release_a_blocked_reader(fifo: Path) -> None:
    """Open the FIFO's other end, so that a start blocked on it (today's main) goes on."""
    with contextlib.suppress(OSError):  # no reader: nothing blocked
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_create_app_with_a_fifo_snapshot_starts_and_moves_it_aside(tmp_path, caplog):
    fifo = tmp_path / "cache.snapshot"
    os.mkfifo(fifo)
    apps: list = []
    settings = {"APP_ENV": "production", "SNAPSHOT_PATH": str(fifo), "SNAPSHOT_INTERVAL": 0}
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        starting = threading.Thread(target=lambda: apps.append(create_app(settings)), daemon=True)
        starting.start()
        starting.join(timeout=LIVENESS_SECONDS)
        blocked = starting.is_alive()
        if blocked:
            release_a_blocked_reader(fifo)
            starting.join(timeout=30)
    assert not blocked, "create_app blocked on the FIFO"
    assert apps[0].test_client().get("/stats").json["keyCount"] == 0
    (moved,) = tmp_path.iterdir()
    assert moved.name.startswith("cache.snapshot.corrupt-") and moved.is_fifo()
    assert "not a regular file: a FIFO" in caplog.text


def test_python_m_memflask_with_a_fifo_snapshot_serves_and_stops(tmp_path):
    fifo = tmp_path / "cache.snapshot"
    os.mkfifo(fifo)
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "PORT": str(port),
        "MEMFLASK_SNAPSHOT_PATH": str(fifo),
        "MEMFLASK_SNAPSHOT_INTERVAL": "0",
    }
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "memflask"], cwd=ROOT, env=environment, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 3 * LIVENESS_SECONDS
        while time.monotonic() < deadline and not healthy(port):
            assert server.poll() is None, errors.read_text()
            time.sleep(0.1)
        assert healthy(port), "the server did not start"
        assert call(port, "GET", "/set?key=k&value=v")[0] == 204
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            release_a_blocked_reader(fifo)
            server.kill()
            server.wait(timeout=30)
    assert "not a regular file: a FIFO" in errors.read_text()
    assert fifo.is_file()  # the last save, where the FIFO was
    assert any(path.is_fifo() for path in tmp_path.glob("cache.snapshot.corrupt-*"))


def healthy(port: int) -> bool:
    try:
        return call(port, "GET", "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def unix_socket_at(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))  # the file stays when the socket closes


@pytest.mark.parametrize(
    "make, kind",
    [
        (os.mkfifo, "a FIFO"),
        (os.mkdir, "a folder"),
        (unix_socket_at, "a socket"),
        (lambda path: os.symlink("/dev/zero", path), "a device"),
    ],
    ids=["fifo", "folder", "socket", "device"],
)
def test_a_snapshot_path_that_is_no_regular_file_is_moved_aside(tmp_path, clock, make, kind):
    path = tmp_path / "cache.snapshot"
    make(path)
    loading = threading.Thread(
        target=lambda: snapshot.load(MemoryStore(clock=clock), path), daemon=True
    )
    loading.start()
    loading.join(timeout=LIVENESS_SECONDS)
    if loading.is_alive():
        release_a_blocked_reader(path)
        loading.join(timeout=30)
        pytest.fail(f"loading {kind} blocked")
    assert not os.path.lexists(path)
    assert len(list(tmp_path.glob("cache.snapshot.corrupt-*"))) == 1


# -- item 12: JSON bodies are UTF-8; the structure check is exact on escapes -----------------

ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_json_body_that_is_not_utf8_is_refused(served, encoding):
    body = json.dumps({"key": "k", "value": "v"}).encode(encoding)
    status, answer = call(served, "POST", "/set", {"Content-Type": JSON}, body)
    assert status == 400 and error_code(answer) == "invalid_encoding"
    assert call(served, "GET", "/get?key=k")[0] == 404


def test_a_utf8_json_body_with_a_byte_order_mark_is_still_read(served):
    """RFC 8259 lets a parser ignore a UTF-8 byte-order mark; memflask always has."""
    body = b"\xef\xbb\xbf" + json.dumps({"key": "k", "value": "v"}).encode()
    assert call(served, "POST", "/set", {"Content-Type": JSON}, body)[0] == 204
    assert call(served, "GET", "/get?key=k") == (200, b"v")


def hidden_parameters_body(max_bytes: int) -> tuple[bytes, int]:
    """A UTF-16 object whose separators all look as if inside strings, in bytes, and its
    parameter count: the first name ends in U+5C41, whose second byte is a backslash,
    so a check reading UTF-8 takes the name's closing quote for an escaped one."""
    fields = ['"\u5c41":1']
    size = 4 + 2 * len(fields[0])
    while size + 2 * (len(f'"k{len(fields)}":1') + 1) <= max_bytes:
        fields.append(f'"k{len(fields)}":1')
        size += 2 * (len(fields[-1]) + 1)
    return ("{" + ",".join(fields) + "}").encode("utf-16-le"), len(fields)


def test_the_issues_utf16_body_of_270k_parameters_is_refused_at_once(served, app):
    body, parameters = hidden_parameters_body(app.config["MAX_CONTENT_LENGTH"])
    assert parameters > 270_000
    (status, answer), seconds = attack_while_probing(
        served,
        lambda: call(served, "POST", "/set", {"Content-Type": JSON}, body, ATTACK_SECONDS),
    )
    assert seconds < LIVENESS_SECONDS
    assert status == 400 and error_code(answer) == "invalid_encoding"


def structure_outside_strings(text: str) -> tuple[int, int]:
    """(commas and colons, deepest nesting) outside JSON strings, a character at a time."""
    tokens = depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in ",:":
            tokens += 1
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return tokens, deepest


TRICKY_TEXT = st.text(alphabet='"\\,:[]{}a\u5c41\u2028', max_size=12)
DOCUMENTS = st.recursive(
    TRICKY_TEXT | st.integers(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS, st.booleans(), st.integers(min_value=0, max_value=6))
def test_the_structure_check_counts_exactly_outside_strings(document, ascii_only, fields):
    """Escaped quotes and backslashes inside strings never desync the check."""
    text = json.dumps(document, ensure_ascii=ascii_only)
    tokens, deepest = structure_outside_strings(text)
    max_tokens = JSON_TOKENS_PER_FIELD * fields
    over = tokens > max_tokens or deepest > MAX_JSON_DEPTH
    try:
        check_json_structure(text.encode("utf-8"), max_tokens)
    except Refusal:
        assert over, (text, tokens, deepest)
    else:
        assert not over, (text, tokens, deepest)


# -- item 15: Unicode line separators in the log; Sec-Fetch-Site in any case -----------------


def test_unicode_line_separators_are_escaped_in_the_request_log(clock, caplog):
    app = create_app({"APP_ENV": "development", "CLOCK": clock})
    with LiveServer(app) as server, caplog.at_level(logging.INFO, logger="memflask"):
        for escape in ("%E2%80%A8", "%E2%80%A9", "%C2%85", "%0B", "%1C"):
            server.request("GET", f"/x{escape}2026-01-01%20INFO%20memflask:%20GET%20/flush%20204")
    lines = [record.getMessage() for record in caplog.records if "/x" in record.getMessage()]
    assert len(lines) == 5
    for line in lines:
        assert len(line.splitlines()) == 1, line
    assert "\\u2028" in lines[0] and "\\u2029" in lines[1] and "\\x85" in lines[2]


@pytest.mark.parametrize("site", ["SAME-SITE", "Cross-Site", "CROSS-SITE", "Same-site"])
def test_sec_fetch_site_is_compared_in_any_case(live_server, site):
    headers = {"Sec-Fetch-Site": site}
    status, _, answer = live_server.request("GET", "/set?key=k&value=v", headers=headers)
    assert status == 403 and error_code(answer) == "forbidden"
    assert live_server.request("GET", "/get?key=k")[0] == 404


@pytest.mark.parametrize("site", ["SAME-ORIGIN", "None"])
def test_same_origin_and_none_in_capitals_may_still_write(live_server, site):
    headers = {"Sec-Fetch-Site": site}
    assert live_server.request("GET", "/set?key=k&value=v", headers=headers)[0] == 204
