"""memflask/web/pipeline.py: a WSGI environ and the app's state in, an Answer out, with no
Flask request context (what the hot path relies on)."""

from __future__ import annotations

import json

import flask
import pytest
from werkzeug.test import EnvironBuilder

from memflask import create_app
from memflask.web.pipeline import answer_verb


@pytest.fixture
def state(clock):
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    return app.extensions["memflask"]


def answer(state, method: str, path: str, **options):
    environ = EnvironBuilder(path=path, method=method, **options).get_environ()
    assert not flask.has_request_context()
    return answer_verb(state, environ, path.partition("?")[0].lstrip("/"))


def test_a_write_then_a_read(state):
    written = answer(state, "GET", "/set", query_string={"key": "k", "value": "v"})
    assert (written.status, written.content_type, written.body) == (204, None, b"")
    read = answer(state, "GET", "/get", query_string={"key": "k"})
    assert (read.status, read.body) == (200, b"v")
    assert read.content_type.startswith("text/plain")
    assert ("ETag", '"1"') in read.headers


def test_a_json_body_is_read_as_parameters(state):
    answer(state, "POST", "/set", json={"key": "k", "value": "from json"})
    assert answer(state, "GET", "/get", query_string={"key": "k"}).body == b"from json"


def test_a_refusal_is_a_json_answer_and_changes_nothing(state):
    refused = answer(state, "GET", "/set", query_string={"key": "k"})
    assert refused.status == 400
    assert json.loads(refused.body)["error"]
    assert answer(state, "GET", "/get", query_string={"key": "k"}).status == 404


def test_an_unknown_verb_and_a_write_by_head_are_refused(state):
    assert answer(state, "GET", "/nosuchverb").status == 404
    head = answer(state, "HEAD", "/set", query_string={"key": "k", "value": "v"})
    assert head.status == 405
    assert answer(state, "GET", "/get", query_string={"key": "k"}).status == 404
