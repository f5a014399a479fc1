"""The benchmark's references must do what memflask does, on the same server settings, or
the comparison means nothing; and its table must carry every target the issue set."""

from __future__ import annotations

import importlib

import pytest
from werkzeug.test import Client

from bench import serve
from bench.http_bench import (
    LOCAL_APPS,
    Measure,
    Server,
    Target,
    aimed_at,
    parse_reference,
    scenarios,
)
from bench.references import bare_wsgi_app, minimal_flask_app
from bench.targets import EVERY_SERVER, GOALS, ORIGINAL, verdicts
from memflask import granian_server


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


@pytest.mark.parametrize("app", LOCAL_APPS)
def test_granian_serves_every_app_with_the_same_settings(app):
    command = serve.command("granian", app, 8123)
    module, _, attribute = command[-1].partition(":")
    assert getattr(importlib.import_module(module), attribute) is serve.APPS[app]
    assert without_threads(command[:-1]) == without_threads(
        serve.command("granian", "memflask", 8123)[:-1]
    )
    # memflask reads bodies on granian's threads and runs its app on one at a time, as
    # memflask serve does; a reference runs on as many threads as memflask's app slots.
    expected = granian_server.BLOCKING_THREADS if app == "memflask" else 1
    assert threads_of(command) == expected


def test_granian_runs_redis_apps_on_waitress_thread_count():
    threads = serve.memflask_settings()["THREADS"]
    assert threads_of(serve.command("granian", "bare-wsgi-redis", 8123)) == threads
    on_redis = serve.command("granian", "memflask", 8123, store_url="redis://127.0.0.1:6379/0")
    assert threads_of(on_redis) == max(granian_server.BLOCKING_THREADS, threads)


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
        return None if scenario.name in ("/get hit", "/get miss", "/set") else "answered 404"


def test_a_reference_runs_only_what_it_serves_and_never_memflask_s_own_verbs():
    running = {
        Target("go", "reference"): OnlyGetAndSet("go", "http://127.0.0.1:1"),
        **{Target(app, "waitress"): Server(app, "http://127.0.0.1:1") for app in LOCAL_APPS},
    }
    notes = []
    plan = {scenario.name: aimed_at(scenario, running, notes) for scenario in scenarios()}
    for name in ("/get hit", "/get miss", "/set"):
        assert Target("go", "reference") in plan[name] and len(plan[name]) == 4
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
        memflask_waitress_get=900, bare_wsgi_waitress_get=1000, go_reference_get=1500
    )
    assert verdicts("/get hit", "waitress", measures, ()) == [
        "vs WSGI >= 0.85: met",
        "p99 <= 2x WSGI's (0.90x): met",
    ]
    measures.update(_measured(memflask_granian_get=900, bare_wsgi_granian_get=2000))
    assert verdicts("/get hit", "granian", measures, ("go",)) == [
        "vs go >= 0.5: met",
        "vs WSGI >= 0.65: MISSED",
        "p99 <= 2x WSGI's (0.45x): met",
    ]
    measures.update(_measured(memflask_granian_mget=3000))
    assert verdicts("/mget x100", "granian", measures, ()) == [
        "vs original /get hit >= 2: no --reference"
    ]
    assert verdicts("/mget x100", "granian", measures, ("go",)) == ["vs go /get hit >= 2: met"]
