"""Hostile or unusual input: answered with a clear error or the right answer, nothing else."""

from __future__ import annotations

import logging

import pytest

from memflask import create_app


@pytest.fixture
def app_config() -> dict:
    return {"APP_ENV": ""}  # request logging on


@pytest.mark.parametrize("token", ["abc=def", "c2VjcmV0==", "a-b.c_d~e+f/g"])
def test_any_rfc_6750_token_authenticates(clock, token):
    client = create_app({"APP_ENV": "production", "TOKEN": token, "CLOCK": clock}).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/set?key=k&value=v", headers=headers).status_code == 204
    wrong = {"Authorization": f"Bearer {token}x"}
    assert client.get("/get?key=k", headers=wrong).status_code == 401


@pytest.mark.parametrize("target", ["/flush", "/set?key=k&value=x", "/delete?key=k"])
def test_a_same_site_page_cannot_write_through_an_image(client, target):
    """<img src="http://localhost:8000/flush"> from another localhost port: no Origin."""
    client.get("/set?key=k&value=v")
    response = client.get(target, headers={"Sec-Fetch-Site": "same-site"})
    assert response.status_code == 403
    assert client.get("/get?key=k").data == b"v"


def test_a_same_site_origin_on_the_allow_list_may_write(clock):
    app = create_app(
        {"APP_ENV": "production", "ALLOWED_ORIGINS": "http://localhost:3000", "CLOCK": clock}
    )
    headers = {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}
    assert app.test_client().get("/set?key=k&value=v", headers=headers).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        b'{"key": "a", "key": "b", "value": "v"}',
        b'[{"verb": "set", "key": "a", "key": "b", "value": "v"}]',
    ],
)
def test_a_json_name_given_twice_is_refused(client, store, body):
    target = "/batch" if body.startswith(b"[") else "/set"
    response = client.post(target, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "duplicate_parameter"
    assert "'key'" in response.json["message"]
    assert store.peek("a") is None and store.peek("b") is None


def test_ttl_answers_within_int64_for_the_farthest_expiry(client):
    assert client.get("/set?key=k&value=v&ttl=9223372036854775807").status_code == 204
    assert client.get("/ttl?key=k").json["ttl"] == 2**63 - 1


def test_the_request_log_has_no_query_string_and_no_forged_lines(client, caplog):
    with caplog.at_level(logging.INFO, logger="memflask"):
        client.get("/set?key=secret-key&value=" + "x" * 10_000)
        client.get("/x%0D%0A2026-01-01 INFO memflask: GET /flush 204")
    lines = caplog.text.splitlines()
    assert not any("secret-key" in line or "xxxx" in line for line in lines)
    set_line = next(
        record.getMessage() for record in caplog.records if "/set" in record.getMessage()
    )
    assert set_line.startswith("GET /set 204 ") and set_line.endswith("ms")
    forged = [record.getMessage() for record in caplog.records if "/x" in record.getMessage()]
    assert len(forged) == 1 and "\r" not in forged[0] and "\n" not in forged[0]
    assert "\\r\\n" in forged[0]
