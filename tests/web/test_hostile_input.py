"""Hostile or unusual input: answered with a clear error or the right answer, nothing else."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tracemalloc

import pytest

from memflask import create_app
from memflask.core.errors import InvalidEncoding, Refusal
from memflask.core.fields import parse_form
from memflask.web.pipeline import read_params

FORM = "application/x-www-form-urlencoded"


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


# -- parsing: bounded memory, one parameter cap for every body kind ------------------------

MIB = 1024 * 1024


def parsing_peak(app, query: str = "", body: bytes = b"", content_type: str = "") -> int:
    """Peak bytes Python allocates while memflask reads one request's parameters."""
    state = app.extensions["memflask"]
    environ = {
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    tracemalloc.start()
    with contextlib.suppress(Refusal):  # refused or not, what parsing cost is the question
        read_params(environ, state.context.registry.get("set"), state)
    try:
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("where", ["query", "form"])
def test_parsing_a_percent_encoded_value_holds_at_most_three_times_its_size(app, where):
    encoded = "key=k&value=" + "%41" * MIB  # 3 MiB on the wire, 1 MiB decoded
    if where == "query":
        peak = parsing_peak(app, query=encoded)
    else:
        peak = parsing_peak(app, body=encoded.encode(), content_type=FORM)
    assert peak <= 3 * len(encoded), f"{peak / MIB:.1f} MiB to parse {len(encoded) / MIB:.1f}"


def test_a_json_body_with_more_parameters_than_a_form_may_carry_is_refused(client, app):
    cap = app.extensions["memflask"].context.max_fields
    at_cap = {"key": "k", "value": "v", **{f"p{index}": "1" for index in range(cap - 2)}}
    assert client.post("/set", json=at_cap).status_code == 204
    over = {**at_cap, "one-more": "1"}
    response = client.post("/set", json=over)
    assert response.status_code == 400 and response.json["error"] == "too_many_parameters"
    flood = json.dumps({f"p{index}": 1 for index in range(200_000)}).encode()
    peak = parsing_peak(app, body=flood, content_type="application/json")
    assert peak <= 3 * len(flood)  # refused before json.loads built 200,000 entries


def test_commas_and_colons_inside_values_are_not_counted(client):
    value = "a:b," * 50_000  # 200,000 separators inside one string
    assert client.post("/set", json={"key": "k", "value": value}).status_code == 204
    assert client.get("/get?key=k").data.decode() == value


def test_a_full_batch_is_still_accepted(client, app):
    commands = [
        {"verb": "set", "key": f"k{index}", "value": "v", "ttl": 60} for index in range(1000)
    ]
    response = client.post("/batch", json=commands)
    assert response.status_code == 200 and len(response.json) == 1000


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000, b"[" * 9 + b"]" * 9])
def test_deeply_nested_json_is_invalid_json(client, body):
    response = client.post("/set", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"


def test_brackets_inside_json_strings_are_not_nesting(client):
    value = "[{" * 20  # 40 brackets in a string: no level of the document's structure
    assert client.post("/set", json={"key": "k", "value": value}).status_code == 204
    assert client.get("/get?key=k").data.decode() == value


@pytest.mark.parametrize("levels", [8, 9])
def test_the_depth_limit_is_the_same_with_few_separators_and_many(client, levels):
    """Few separators: depth checked on the parsed document; many: on the raw structure."""
    few = b'{"a":' * levels + b"1" + b"}" * levels
    padding = ",".join(f'"p{n}":{n}' for n in range(4300))  # past the cap: the exact scan
    many = b'{"a":' * levels + b"1" + b"}" * levels
    many = many[:-1] + b"," + padding.encode() + b"}"
    for body in (few, many):
        response = client.post("/set", data=body, content_type="application/json")
        if levels == 9:
            assert (response.status_code, response.json["error"]) == (400, "invalid_json")
        else:
            assert response.json["error"] != "invalid_json"  # too many parameters or a bad key


# parse_form has a fast path for short fields with nothing to decode: both ways agree.
@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b"key=k&value=v", {"key": ["k"], "value": ["v"]}),
        (b"&&a=&=b&c=1=2&a=3&", {"a": ["", "3"], "": ["b"], "c": ["1=2"]}),
        (b"flag", {"flag": [""]}),
        (b"k=\xc3\xa9", {"k": ["\u00e9"]}),  # raw UTF-8 bytes: decoded, not refused
        (b"k=%C3%A9+x", {"k": ["\u00e9 x"]}),
        (b"k=" + b"v" * 70_000, {"k": ["v" * 70_000]}),  # past the fast path's length
    ],
)
def test_form_fields_parse_the_same_on_every_path(data, parsed):
    assert parse_form(data, 100) == parsed


@pytest.mark.parametrize(
    "data", [b"key=\xff", b"k\xc3=1", b"k=%FF", b"k=" + b"v" * 70_000 + b"\xff"]
)
def test_bytes_that_are_not_utf8_are_refused_on_every_path(data):
    with pytest.raises(InvalidEncoding):
        parse_form(data, 100)
