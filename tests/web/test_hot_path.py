"""The WSGI-level hot path: the same answers as the Flask view, without Flask's machinery."""

from __future__ import annotations

import json

import pytest
from flask import request_started

from memflask import create_app
from memflask.config import ConfigError

BEARER = {"Authorization": "Bearer sesame"}
FORM = "application/x-www-form-urlencoded"

# (method, target, body, headers): every kind of request a verb answers, refusals included.
REQUESTS = [
    ("GET", "/set?key=k&value=v", None, {}),
    ("GET", "/get?key=k", None, {}),
    ("HEAD", "/get?key=k", None, {}),
    ("GET", "/get?key=k", None, {"If-None-Match": '"1"'}),
    ("GET", "/get?key=absent", None, {}),
    ("POST", "/set", b"key=f&value=form", {"Content-Type": FORM}),
    ("POST", "/set", b'{"key": "j", "value": "json"}', {"Content-Type": "application/json"}),
    ("POST", "/set", b"key=f", {"Content-Type": "text/plain"}),
    ("POST", "/set", b"{nope", {"Content-Type": "application/json"}),
    ("GET", "/set?key=k&value=w", None, {"Prefer": "return=representation"}),
    ("GET", "/increment?key=n&value=ten", None, {}),
    ("GET", "/mget?key=k&key=f&key=j", None, {}),
    ("GET", "/ttl?key=k", None, {}),
    ("HEAD", "/set?key=k&value=v", None, {}),
    ("GET", "/set?key=k&value=v", None, {"Origin": "https://evil.example"}),
    ("GET", "/get?key=k", None, {"Host": "evil.example"}),
    ("GET", "/get?key=k", None, {"Authorization": "Bearer wrong"}),
    ("POST", "/batch", b'[{"verb": "get", "key": "k"}]', {"Content-Type": "application/json"}),
    ("GET", "/nosuchverb?key=k", None, {}),
    ("GET", "/stats", None, {}),
]


def answers(hot_path: bool, clock) -> list[tuple]:
    app = create_app(
        {"APP_ENV": "production", "CLOCK": clock, "TOKEN": "sesame", "HOT_PATH": hot_path}
    )
    client = app.test_client()
    seen = []
    for method, target, body, headers in REQUESTS:
        response = client.open(target, method=method, data=body, headers={**BEARER, **headers})
        data = response.data
        if target == "/stats":  # uptime may tick between the two apps
            document = json.loads(data)
            document.pop("uptime")
            data = json.dumps(document).encode()
        seen.append((method, target, response.status, sorted(response.headers.items()), data))
    return seen


def test_the_hot_path_answers_exactly_as_the_flask_view(clock):
    for hot, flask in zip(answers(True, clock), answers(False, clock)):
        assert hot == flask


def dispatched_by_flask(app, target: str) -> int:
    """How many times Flask pushed a request context to answer `target`."""
    seen = []

    def count(sender, **extra):
        seen.append(sender)

    with request_started.connected_to(count, app):
        app.test_client().get(target)
    return len(seen)


def test_verbs_skip_flask_on_the_hot_path_and_the_rest_goes_through_flask(clock):
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    assert dispatched_by_flask(app, "/get?key=k") == 0
    assert dispatched_by_flask(app, "/set?key=k&value=v") == 0
    assert dispatched_by_flask(app, "/healthz") == 1
    assert dispatched_by_flask(app, "/nosuchverb") == 1


def test_with_the_hot_path_off_flask_answers_the_verbs(clock):
    app = create_app({"APP_ENV": "production", "CLOCK": clock, "HOT_PATH": False})
    assert dispatched_by_flask(app, "/get?key=k") == 1


@pytest.mark.parametrize("word, expected", [("0", False), ("off", False), ("true", True)])
def test_the_hot_path_setting_from_the_environment(monkeypatch, clock, word, expected):
    monkeypatch.setenv("MEMFLASK_HOT_PATH", word)
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    assert app.config["HOT_PATH"] is expected
    assert (dispatched_by_flask(app, "/get?key=k") == 0) is expected


@pytest.mark.parametrize("bad", ["maybe", "2", 3, None])
def test_a_bad_hot_path_setting_is_refused(clock, bad):
    with pytest.raises(ConfigError, match="HOT_PATH"):
        create_app({"APP_ENV": "production", "CLOCK": clock, "HOT_PATH": bad})


def test_an_unexpected_error_on_the_hot_path_is_a_logged_json_500(clock, caplog):
    from memflask.commands import Command

    class Broken(Command):
        name = "broken"

        def apply(self, store, args):
            raise RuntimeError("a bug")

    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    app.extensions["memflask"].context.registry.register(Broken)
    assert dispatched_by_flask(app, "/broken") == 0
    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert response.json["error"] == "internal_server_error"
    assert "RuntimeError: a bug" in caplog.text and "/broken" in caplog.text
