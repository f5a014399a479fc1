"""The benchmark's reference apps must do what memflask does, or the comparison means nothing."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from bench.references import bare_wsgi_app, minimal_flask_app


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
    from bench.http_bench import scenarios

    names = {scenario.name for scenario in scenarios()}
    assert {"/get hit", "/get miss", "/set", "/increment", "/stats"} <= names
    assert {"/mget x10", "/mget x100", "/batch x10", "/batch x100"} <= names
