"""The benchmark's references must do what memflask does, on the same server settings, or
the comparison means nothing; and its table must carry every target the issue set."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from werkzeug.test import Client

from bench import serve
from bench.http_bench import (
    LOCAL_APPS,
    Measure,
    Server,
    Target,
    aimed_at,
    autogroup,
    other_session_note,
    parse_reference,
    scenarios,
)
from bench.references import bare_wsgi_app, minimal_flask_app
from bench.targets import EVERY_SERVER, GOALS, ORIGINAL, verdicts
from memflask.config import default_threads
from memflask.serving import granian as granian_server
from tests.harness.servers import ROOT, free_port, wait_until_listening


@pytest.mark.parametrize("make", [minimal_flask_app, bare_wsgi_app])
def test_reference_app_serves_the_benchmarked_routes(make):
    client = Client(make())
    assert client.get("/get?key=k").status_code == 404
    written = client.get("/set?key=k&value=v")
    assert written.status_code == 204
    assert "Content-Length" not in written.headers  # a 204 ends with its headers, as memflask's
    response = client.get("/get?key=k")
    assert (response.status_code, response.data) == (200, b"v")
    client.get("/increment?key=n&value=2")
    client.get("/increment?key=n&value=3")
    assert client.get("/get?key=n").data == b"5"
    assert client.get("/stats").json == {"keyCount": 2}


def test_the_bench_plans_every_figure_the_issue_asks_for():
    names = {scenario.name for scenario in scenarios()}
    assert {"/get hit", "/get miss", "/set", "/increment", "/stats"} <= names
    assert {"/mget x10", "/mget x100", "/batch x10", "/batch x100"} <= names
    assert set(serve.APPS) == set(LOCAL_APPS)
    assert serve.SERVERS == ("waitress", "granian")


def test_every_target_names_a_planned_figure_and_a_reference():
    names = {scenario.name for scenario in scenarios()}
    for goal in GOALS:
        assert goal.scenario in names and (goal.their_scenario or goal.scenario) in names
        assert goal.server in (*serve.SERVERS, EVERY_SERVER)
        assert goal.versus in (*LOCAL_APPS[1:], ORIGINAL)


REFERENCES = ("flask-minimal", "bare-wsgi")


def readme_text() -> str:
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


@pytest.mark.parametrize("server", serve.SERVERS)
def test_the_bench_serves_memflask_by_the_readme_s_production_command(server):
    program, *arguments = serve.PRODUCTION_COMMANDS[server]
    # The README names the program and its arguments for port 8000, on one line or two.
    in_readme = " ".join([program, *arguments]).format(port=8000)
    assert in_readme in readme_text()
    command = serve.command(server, "memflask", 8123)
    assert command[:3] == [sys.executable, "-m", serve.MODULES[program]]
    assert command[3 : 3 + len(arguments)] == [part.format(port=8123) for part in arguments]
    if server == "granian":  # its command in the README listens on granian's default port
        assert command[3 + len(arguments) :] == ["--port", "8123", "--workers", "1"]
    assert serve.ENVIRONMENT == {"APP_ENV": "production"}


@pytest.mark.parametrize("app", REFERENCES)
def test_waitress_serves_the_references_by_its_stock_command(app):
    command = serve.command("waitress", app, 8123)
    assert command == [
        *(sys.executable, "-m", "waitress", "--listen=127.0.0.1:8123"),
        *("--call", f"bench.references:{serve.APPS[app].__name__}"),
    ]


def test_the_server_overhead_row_is_memflask_on_plain_waitress_serve():
    command = serve.command("waitress", serve.PLAIN_WAITRESS, 8123)
    assert command == [sys.executable, "-m", "bench.serve", serve.PLAIN_WAITRESS, "8123"]
    assert serve.APPS[serve.PLAIN_WAITRESS] is serve.APPS["memflask"]
    with pytest.raises(ValueError):
        serve.command("granian", serve.PLAIN_WAITRESS, 8123)


@pytest.mark.parametrize("app", REFERENCES)
def test_granian_serves_every_reference_with_the_same_settings(app):
    command = serve.command("granian", app, 8123)
    module, _, attribute = command[-1].partition(":")
    assert getattr(importlib.import_module(module), attribute) is serve.APPS[app]
    assert without_threads(command[:-1]) == without_threads(
        serve.command("granian", "bare-wsgi", 8123)[:-1]
    )
    # As many threads as memflask's app slots on the memory store: its app never waits.
    assert threads_of(command) == 1


def test_granian_runs_redis_references_on_memflask_s_redis_thread_count():
    threads = default_threads("redis://127.0.0.1:6379/0")
    assert threads_of(serve.command("granian", "bare-wsgi-redis", 8123)) == threads == 4
    on_redis = serve.command("granian", "memflask", 8123, store_url="redis://127.0.0.1:6379/0")
    assert threads_of(on_redis) == granian_server.BLOCKING_THREADS


def threads_of(command: list[str]) -> int:
    return int(command[command.index("--blocking-threads") + 1])


def without_threads(command: list[str]) -> list[str]:
    at = command.index("--blocking-threads")
    return command[:at] + command[at + 2 :]


def test_a_reference_is_name_equals_url():
    assert parse_reference("go=http://127.0.0.1:8001") == ("go", "http://127.0.0.1:8001")
    for wrong in ("http://127.0.0.1:8001", "go=127.0.0.1:8001", "memflask=http://h:1"):
        with pytest.raises(ValueError):
            parse_reference(wrong)


class OnlyGetAndSet(Server):
    """A reference server as the bench sees it, serving /get and /set only (never called)."""

    def refusal(self, scenario):
        served = ("/get hit", "/get hit, 64 connections", "/get miss", "/set")
        return None if scenario.name in served else "answered 404"


def test_a_reference_runs_only_what_it_serves_and_never_memflask_s_own_verbs():
    running = {
        Target("go", "reference"): OnlyGetAndSet("go", "http://127.0.0.1:1"),
        **{Target(app, "waitress"): Server(app, "http://127.0.0.1:1") for app in LOCAL_APPS},
    }
    notes = []
    plan = {scenario.name: aimed_at(scenario, running, notes) for scenario in scenarios()}
    for name in ("/get hit", "/get miss", "/set"):
        assert Target("go", "reference") in plan[name] and len(plan[name]) == 5
    # The latency table's second load: memflask, the bare callable and the reference.
    assert plan["/get hit, 64 connections"] == [
        Target("go", "reference"),
        Target("memflask", "waitress"),
        Target("bare-wsgi", "waitress"),
    ]
    assert plan["/increment"] == [Target(app, "waitress") for app in LOCAL_APPS]
    assert plan["/mget x100"] == plan["/batch x10"] == [Target("memflask", "waitress")]
    assert notes == [
        "go does not serve /increment: answered 404",
        "go does not serve /stats: answered 404",
    ]


def _measured(**figures: float) -> dict:
    """(scenario, target) -> Measure, from keywords like memflask_waitress_get=3000."""
    names = {"get": "/get hit", "set": "/set", "mget": "/mget x100"}
    measures = {}
    for key, value in figures.items():
        app, server, scenario = key.rsplit("_", 2)
        app = app.replace("_", "-")
        measures[(names[scenario], Target(app, server))] = Measure(value, 1.0, value / 1000)
    return measures


def test_targets_are_judged_against_the_server_s_own_references_and_the_original():
    measures = _measured(
        memflask_waitress_get=900,
        memflask_plain_waitress_get=940,
        bare_wsgi_waitress_get=1000,
        go_reference_get=1500,
    )
    assert verdicts("/get hit", "waitress", measures, ()) == [
        "vs plain waitress.serve >= 0.95: met",
        "vs WSGI >= 0.85: met",
        "p99 <= 2x WSGI's (0.90x): met",
    ]
    measures.update(_measured(memflask_granian_get=900, bare_wsgi_granian_get=2000))
    assert verdicts("/get hit", "granian", measures, ("go",)) == [
        "vs go >= 0.5: met",
        "vs WSGI >= 0.9: MISSED",
        "p99 <= 1.5x WSGI's (0.45x): met",
    ]
    measures.update(_measured(memflask_granian_mget=3000))
    assert verdicts("/mget x100", "granian", measures, ()) == [
        "vs original /get hit >= 2: no --reference"
    ]
    assert verdicts("/mget x100", "granian", measures, ("go",)) == ["vs go /get hit >= 2: met"]


def test_a_bench_server_runs_in_the_bench_s_session_in_a_process_group_of_its_own():
    # Linux's autogroup scheduler shares the CPU between sessions first: a server in a
    # session of its own got about half the cores against wrk, which runs in the
    # bench's session, as a reference started from the bench's shell does.
    from bench.http_bench import LocalServer

    server = LocalServer("bare-wsgi", "waitress")
    try:
        pid = server.process.pid
        assert os.getsid(pid) == os.getsid(0)
        assert os.getpgid(pid) == pid != os.getpgid(0)
    finally:
        server.stop()
    assert server.process.poll() is not None


def start_http_server(port: int, own_session: bool) -> subprocess.Popen:
    """Python's own http.server on `port`, in a session of its own or the test's."""
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=own_session,
    )


@pytest.mark.skipif(
    autogroup(os.getpid()) is None,
    reason="the scheduler shares the CPU by thread alone here: no session is favoured",
)
def test_the_bench_notes_a_reference_that_runs_in_another_session():
    same_port, other_port = free_port(), free_port()
    servers = []
    try:
        servers.append(start_http_server(same_port, own_session=False))
        other_session = start_http_server(other_port, own_session=True)
        servers.append(other_session)
        wait_until_listening(same_port, servers[0])
        wait_until_listening(other_port, other_session)
        assert other_session_note("go", f"http://127.0.0.1:{same_port}") is None
        note = other_session_note("go", f"http://127.0.0.1:{other_port}")
        assert note is not None
        assert f"reference go (pid {other_session.pid}) runs in another session" in note
        # Not on this machine, or nothing listening: nothing to tell.
        assert other_session_note("go", "http://192.0.2.1:8000") is None
        assert other_session_note("go", f"http://127.0.0.1:{free_port()}") is None
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=30)
