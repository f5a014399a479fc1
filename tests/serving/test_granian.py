"""granian serves memflask with every feature: `granian --interface wsgi <module>:app`
(granian's own command) and `memflask serve --server granian`.

Graceful SIGTERM and SIGINT (in flight answered, snapshot saved in the worker, exit 0),
keep-alive, the limits with memflask's JSON errors, and several workers refused on the
memory store. Every server is a real granian process on a free loopback port.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

pytest.importorskip("granian", reason="granian is an optional extra: pip install memflask[granian]")

from granian.http import HTTP1Settings

from memflask import create_app
from memflask.cli import main
from memflask.serving.granian import (
    BLOCKING_THREADS,
    HEADER_SECONDS,
    app_slots,
    granian_options,
    prepare_worker,
)
from memflask.serving.waitress import waitress_options
from tests.harness.granian_app import CONTROL_PATH, SECRET_HEADER
from tests.harness.servers import (
    ROOT,
    free_port,
    state_of,
    wait_until_listening,
    wait_until_serving,
)
from tests.serving.test_keep_alive import check_keep_alive
from tests.serving.test_shutdown import start_slow_request

# An app module as wsgi.py builds it for granian, with a /slow verb (1 s), and that
# takes BOOT_SECONDS to build (as a large snapshot would).
SLOW_APP = """
import os
import time
from memflask import create_app
from memflask.serving.granian import prepare_worker
from tests.harness.slow_verb import Slow


time.sleep(float(os.environ.get("BOOT_SECONDS", "0")))
app = prepare_worker(create_app())
app.extensions["memflask"].context.registry.register(Slow)
"""

# Small limits keep the requests that cross them small: a body over 71,536 bytes
# (6 x 1000 + 64 KiB) and a request head over 68,536 (3 x 1000 + 64 KiB).
MAX_VALUE_BYTES = 1000
BODY_LIMIT = 6 * MAX_VALUE_BYTES + 64 * 1024
HEAD_LIMIT = 3 * MAX_VALUE_BYTES + 64 * 1024
REFUSAL = "granian workers would each hold a memory store of their own"


class Served:
    """One granian process: its port, the process, and where it saves its snapshot."""

    def __init__(self, command: list[str], tmp_path: Path, extra_environment: dict[str, str]):
        self.port = free_port()
        self.snapshot = tmp_path / "cache.json"
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
            "APP_ENV": "production",
            "MEMFLASK_MAX_VALUE_BYTES": str(MAX_VALUE_BYTES),
            "MEMFLASK_SNAPSHOT_PATH": str(self.snapshot),
            "MEMFLASK_SNAPSHOT_INTERVAL": "0",  # saved only at a clean stop
            **extra_environment,
        }
        command = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group: a worker outlives a killed granian, holding the pipes.
            start_new_session=True,
        )

    def finish(self) -> tuple[str, str]:
        """Stop granian and its workers if they still run; return (stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of this group
        return self.process.communicate(timeout=30)

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        """Wait until granian logs a line with `text` (its log goes to stdout)."""
        found = threading.Event()

        def read_until_found() -> None:
            for line in self.process.stdout:
                if text in line:
                    found.set()
                    return

        threading.Thread(target=read_until_found, daemon=True).start()
        assert found.wait(timeout), f"granian did not log {text!r}"

    def saved_items(self) -> list:
        return json.loads(self.snapshot.read_text())["items"]


def granian_command(app: str, *options: str) -> list[str]:
    """granian's own command (the console script beside this Python), on 127.0.0.1."""
    granian = str(Path(sys.executable).with_name("granian"))
    return [
        granian,
        "--interface",
        "wsgi",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        *options,
    ]


# memflask's command, as `memflask serve --server granian` runs it.
MEMFLASK_SERVE = [sys.executable, "-m", "memflask.cli", "serve", "--server", "granian"]
MEMFLASK_SERVE += ["--port", "{port}"]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start granian processes, killed at the end if still running; slowapp.py is in tmp_path."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    started: list[Served] = []

    def start_process(command: list[str], environment: Optional[dict] = None) -> Served:
        served = Served(command, tmp_path, environment or {})
        started.append(served)
        return served

    yield start_process
    for served in started:
        served.finish()


@pytest.fixture(params=["granian command", "memflask serve"])
def served(request: pytest.FixtureRequest, start) -> Served:
    """A serving granian, started by either command."""
    command = (
        granian_command("slowapp:app") if request.param == "granian command" else MEMFLASK_SERVE
    )
    served = start(command)
    wait_until_serving(served.port, served.process)
    return served


def request(port: int, method: str, target: str, body: bytes = b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def raw_answer(port: int, data: bytes) -> tuple[int, bytes]:
    """Send `data` on a new connection; return the status and body of the one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(10)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed in the middle of the body"
            body += chunk
        return int(head.split()[1]), body[:length]


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]


FORM = "application/x-www-form-urlencoded"


def test_get_set_and_keep_alive_after_204_and_304(served):
    assert request(served.port, "GET", "/set?key=k&value=v")[0] == 204
    assert request(served.port, "GET", "/get?key=k") == (200, b"v")
    check_keep_alive(served.port)


def test_a_value_over_max_value_bytes_is_the_json_413(served):
    body = urlencode({"key": "big", "value": "v" * (MAX_VALUE_BYTES + 1)}).encode()
    status, answer = request(served.port, "POST", "/set", body, {"Content-Type": FORM})
    assert (status, error_code(answer)) == (413, "value_too_large")
    value = "v" * MAX_VALUE_BYTES  # at the limit, in the URL
    assert (
        request(served.port, "GET", "/set?" + urlencode({"key": "big", "value": value}))[0] == 204
    )


def test_a_body_announced_over_the_limit_is_the_json_413_before_it_is_sent(served):
    head = (
        b"POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1)
    )
    status, body = raw_answer(served.port, head)
    assert (status, error_code(body)) == (413, "request_entity_too_large")


def test_a_chunked_body_over_the_limit_is_the_json_413(served):
    # granian streams a chunked body unlimited; memflask reads one byte past the limit.
    chunk = b"key=k&value=" + b"v" * BODY_LIMIT
    data = (
        b"POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
    )
    status, body = raw_answer(served.port, data)
    assert (status, error_code(body)) == (413, "request_entity_too_large")


def test_a_chunked_body_within_the_limit_is_served(served):
    chunk = b"key=chunked&value=" + b"v" * MAX_VALUE_BYTES
    data = (
        b"POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
    )
    assert raw_answer(served.port, data)[0] == 204
    assert request(served.port, "GET", "/get?key=chunked") == (200, b"v" * MAX_VALUE_BYTES)


def test_a_request_head_far_over_the_limit_is_431(served):
    # memflask serve sets the head limit; granian's own command keeps its own (400 KiB,
    # --http1-buffer-size). hyper checks its buffer between reads, so a head somewhat
    # over the limit may pass: three times over is refused for certain.
    limit = max(HEAD_LIMIT, HTTP1Settings().max_buffer_size)
    data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n" % (b"a" * 3 * limit)
    assert raw_answer(served.port, data)[0] == 431


def test_a_url_over_64_kib_is_414_from_granian(served):
    # hyper's own bound on a URL, below memflask's head limit: large values go in a body.
    assert request(served.port, "GET", "/get?key=" + "k" * (64 * 1024))[0] == 414


def test_the_host_check_applies_and_a_request_without_host_is_not_checked(served):
    status, body = raw_answer(served.port, b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert (status, error_code(body)) == (403, "forbidden")
    # No browser sends a request without Host: memflask does not check it (granian says "").
    assert raw_answer(served.port, b"GET /healthz HTTP/1.0\r\n\r\n")[0] == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_granian_command_answers_in_flight_saves_and_exits_0(start, signum):
    served = start(granian_command("slowapp:app"))
    wait_until_serving(served.port, served.process)
    assert request(served.port, "GET", "/set?key=kept&value=1")[0] == 204
    answers: list = []
    client = start_slow_request(served.port, answers)
    served.process.send_signal(signum)
    client.join(timeout=30)
    assert served.process.wait(timeout=30) == 0, served.finish()
    assert answers == [(200, b"finished")]
    assert ["kept", "1", None] in served.saved_items()
    assert "Traceback" not in served.finish()[1]


def test_a_stop_while_the_worker_builds_the_app_is_not_lost(start):
    # granian installs a worker's signal handler only once the app is built; memflask
    # sees the signal the handler inherited from granian's main process recorded.
    served = start(granian_command("slowapp:app"), {"BOOT_SECONDS": "3"})
    wait_until_listening(served.port, served.process)
    time.sleep(0.5)  # the worker is forked and building the app
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0, served.finish()
    assert "Traceback" not in served.finish()[1]


def test_memflask_serve_saves_the_last_snapshot_at_sigterm(start):
    # (A request still arriving when SIGTERM comes is not tested: whether granian waits
    # for its last bytes depends on timing, and such a test was flaky under load.)
    served = start(MEMFLASK_SERVE)
    wait_until_serving(served.port, served.process)
    assert request(served.port, "GET", "/set?key=late&value=1")[0] == 204
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0, served.finish()
    assert ["late", "1", None] in served.saved_items()


@pytest.mark.parametrize(
    ("options", "environment"),
    [(["--workers", "2"], {}), ([], {"GRANIAN_WORKERS": "2"})],
    ids=["--workers", "GRANIAN_WORKERS"],
)
def test_granian_command_with_two_workers_on_the_memory_store_exits_1(start, options, environment):
    served = start(granian_command("slowapp:app", *options), environment)
    assert served.process.wait(timeout=60) == 1
    stderr = served.finish()[1]
    assert f"memflask: 2 {REFUSAL}" in stderr
    assert "Traceback" not in stderr


def test_memflask_serve_says_what_it_serves_on_stderr(start):
    served = start(MEMFLASK_SERVE)
    wait_until_serving(served.port, served.process)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    stderr = served.finish()[1]
    assert f"serving http://127.0.0.1:{served.port} (memory store" in stderr, stderr


def test_memflask_serve_refuses_two_workers_on_the_memory_store():
    result = CliRunner().invoke(main, ["serve", "--server", "granian", "--workers", "2"])
    assert result.exit_code == 2
    assert f"--workers 2: 2 {REFUSAL}" in result.output


def test_waitress_takes_no_workers():
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers is for --server granian" in result.output


def test_memflask_serve_with_a_bad_setting_exits_2():
    result = CliRunner().invoke(main, ["serve", "--server", "granian", "--max-bytes", "-5"])
    assert (result.exit_code, "MAX_BYTES" in result.output) == (2, True)


def test_two_workers_share_a_redis_store(start, redis_url):
    environment = {"MEMFLASK_STORE_URL": redis_url, "MEMFLASK_SNAPSHOT_PATH": ""}
    environment["MEMFLASK_STORE_PREFIX"] = f"granian-{os.getpid()}:"
    served = start([*MEMFLASK_SERVE, "--workers", "2"], environment)
    wait_until_serving(served.port, served.process)
    assert request(served.port, "GET", "/set?key=shared&value=1")[0] == 204
    for _ in range(4):  # new connections, answered by either worker
        assert request(served.port, "GET", "/get?key=shared") == (200, b"1")
    request(served.port, "GET", "/flush")
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0, served.finish()


def test_wsgi_py_under_granian_saves_at_sigterm(start):
    served = start(granian_command("wsgi:app"))
    wait_until_serving(served.port, served.process)
    assert request(served.port, "GET", "/set?key=kept&value=1")[0] == 204
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0, served.finish()
    assert ["kept", "1", None] in served.saved_items()


@pytest.mark.parametrize("threads", [[], ["--blocking-threads", "1"]])
def test_wsgi_py_serves_under_granian(start, threads):
    """Also on one blocking thread, as the README offers behind a body-buffering proxy."""
    served = start(granian_command("wsgi:app", *threads))
    wait_until_serving(served.port, served.process)
    assert request(served.port, "GET", "/set?key=k&value=v")[0] == 204
    assert request(served.port, "GET", "/get?key=k") == (200, b"v")
    body = json.dumps([{"verb": "set", "key": "b", "value": "w"}, {"verb": "get", "key": "b"}])
    status, answer = request(
        served.port, "POST", "/batch", body.encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and json.loads(answer)[1]["value"] == "w", answer


def test_granian_gets_memflasks_address_and_limits_and_one_app_slot_on_memory():
    app = create_app({"HOST": "127.0.0.2", "PORT": 8123, "THREADS": 7, "MAX_VALUE_BYTES": 1000})
    options = granian_options(app.config)
    assert (options["address"], options["port"]) == ("127.0.0.2", 8123)
    assert (options["workers"], options["http1_settings"].max_buffer_size) == (1, HEAD_LIMIT)
    # Threads enough that clients sending bodies slowly hold only threads of their own,
    # taking turns at the app one at a time: the memory store never waits for I/O, and
    # more at once only contend for the GIL.
    assert options["blocking_threads"] == BLOCKING_THREADS
    assert app_slots(app.config) == 1
    # As many connections as waitress serves, and silent ones closed after HEADER_SECONDS.
    assert options["backpressure"] == waitress_options(app.config)["connection_limit"]
    assert options["http1_settings"].header_read_timeout == HEADER_SECONDS * 1000


def test_granian_runs_the_app_on_threads_threads_at_once_on_redis():
    settings = {**create_app({"THREADS": 7}).config, "STORE_URL": "redis://127.0.0.1:1/0"}
    assert granian_options(settings)["blocking_threads"] == BLOCKING_THREADS
    assert app_slots(settings) == 7


def test_prepare_worker_leaves_an_app_outside_granian_as_it_was():
    app = create_app({"APP_ENV": "production"})
    wsgi_app = app.wsgi_app
    assert prepare_worker(app) is app
    assert app.wsgi_app is wsgi_app


# The contract suite through granian (tests/conftest.py, tests/harness/granian_app.py): the
# `client` fixture's requests go to a granian process, whose store the `store` fixture reads.


@pytest.mark.parametrize("through", ["granian"], indirect=True)
def test_the_contract_client_reaches_a_granian_process_reset_for_each_test(
    client, store, app, clock, granian_server
):
    assert client.get("/set?key=k&value=v&ttl=10").status_code == 204
    assert client.get("/get?key=k").data == b"v"
    assert app.extensions["memflask"].store.peek("k") is None  # not this process's app
    assert state_of(store, "k") == ("v", clock.now + 10, 1)
    clock.tick(10)  # the worker's clock moves with the test's
    assert client.get("/get?key=k").status_code == 404
    assert (store.stats()["hits"], store.stats()["misses"]) == (1, 1)
    granian_server.reset(clock.now)  # as before the next test: a fresh app
    assert client.get("/stats").json["hits"] == 0
    assert state_of(store, "k") is None


@pytest.mark.parametrize("through", ["granian"], indirect=True)
def test_the_granian_workers_control_requests_need_its_secret(client, granian_server):
    client.get("/set?key=k&value=v")
    for secret in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: ""}):
        for action in ("reset?now=0", "stats", "peek?key=k"):
            target = f"{CONTROL_PATH}{action}"
            assert request(granian_server.port, "POST", target, headers=secret)[0] == 403
    assert granian_server.store.stats()["keyCount"] == 1  # nothing reset
