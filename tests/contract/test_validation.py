"""Bad input gets a clear JSON error and changes nothing: every verb, parameter and body kind."""

from __future__ import annotations

import pytest

from memflask import create_app
from memflask.commands import ExpiryParameter, Key, default_registry
from tests.harness.servers import state_of

NOW = 1_700_000_000

# The verb tables come from the commands' own descriptions (their parameter objects).
COMMANDS = default_registry.commands()
KEYED_VERBS = [c.name for c in COMMANDS if any(isinstance(p, Key) for p in c.parameters)]
VALUE_VERBS = [c.name for c in COMMANDS if any(p.name == "value" for p in c.parameters)]
EXPIRY_VERBS = [
    c.name for c in COMMANDS if any(isinstance(p, ExpiryParameter) for p in c.parameters)
]
# The other parameters each verb needs to get past validation.
REQUIRED = {
    c.name: examples
    for c in COMMANDS
    if (
        examples := {
            name: value
            for p in c.parameters
            if p.required and p.name != "key"
            for name, value in p.examples().items()
        }
    )
}


def assert_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert set(response.json) == {"error", "message"}
    assert response.json["error"] == code
    assert response.json["message"]


@pytest.fixture
def seeded(client, store):
    """A cache holding key "k" = "1" (expiring in 100 s); asserts it is untouched afterwards."""
    client.get(f"/set?key=k&value=1&expire={NOW + 100}")
    before = state_of(store, "k")
    yield client
    assert state_of(store, "k") == before, "a refused request changed the cache"
    assert store.stats()["keyCount"] == 1


def query(verb, **params):
    return {**REQUIRED.get(verb, {}), **params}


@pytest.mark.parametrize("verb", KEYED_VERBS)
def test_missing_key(seeded, verb):
    assert_error(seeded.get(f"/{verb}", query_string=query(verb)), 400, "missing_parameter")


@pytest.mark.parametrize("verb", KEYED_VERBS)
def test_empty_key(seeded, verb):
    assert_error(seeded.get(f"/{verb}", query_string=query(verb, key="")), 400, "invalid_key")


@pytest.mark.parametrize("verb", KEYED_VERBS)
def test_key_longer_than_250_utf8_bytes(seeded, verb):
    # 126 two-byte characters: 126 characters but 252 bytes.
    response = seeded.get(f"/{verb}", query_string=query(verb, key="é" * 126))
    assert_error(response, 400, "key_too_long")


@pytest.mark.parametrize("verb", ["get", "set"])
def test_key_of_exactly_250_bytes_is_fine(client, verb):
    response = client.get(f"/{verb}", query_string=query(verb, key="é" * 125))
    assert response.status_code in (200, 204, 404)
    assert response.status_code != 400


def test_max_key_bytes_is_a_setting(clock):
    client = create_app({"APP_ENV": "production", "MAX_KEY_BYTES": 4, "CLOCK": clock}).test_client()
    assert client.get("/set?key=abcd&value=1").status_code == 204
    assert_error(client.get("/set?key=abcde&value=1"), 400, "key_too_long")


@pytest.mark.parametrize("verb", KEYED_VERBS)
@pytest.mark.parametrize("target", ["key=%FF", "key=k&value=%C3", "key=%ED%A0%80"])
def test_invalid_utf8_in_query(seeded, verb, target):
    extra = "".join(
        f"&{name}={value}" for name, value in REQUIRED.get(verb, {}).items() if name not in target
    )
    assert_error(seeded.get(f"/{verb}?{target}{extra}"), 400, "invalid_encoding")


def test_invalid_utf8_in_form_body(seeded):
    response = seeded.post(
        "/set", data=b"key=k&value=%FF", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 400, "invalid_encoding")


def test_invalid_utf8_in_json_body(seeded):
    response = seeded.post(
        "/set", data=b'{"key": "k", "value": "\xff"}', content_type="application/json"
    )
    assert_error(response, 400, "invalid_encoding")


def test_lone_surrogate_in_json_body(seeded):
    response = seeded.post(
        "/set", data=b'{"key": "k", "value": "\\ud800"}', content_type="application/json"
    )
    assert_error(response, 400, "invalid_encoding")


@pytest.mark.parametrize("verb", VALUE_VERBS)
def test_missing_value(seeded, verb):
    params = query(verb, key="k")
    del params["value"]
    assert_error(seeded.get(f"/{verb}", query_string=params), 400, "missing_parameter")


def test_checkandset_needs_compare(seeded):
    assert_error(seeded.get("/checkandset?key=k&value=2"), 400, "missing_parameter")


@pytest.mark.parametrize("verb", EXPIRY_VERBS)
@pytest.mark.parametrize("name", ["expire", "ttl"])
@pytest.mark.parametrize(
    "bad",
    [
        "soon",
        "1.5",
        "1e3",
        " 10",
        "10 ",
        "0x10",
        "1_000",
        "\u0661\u0662",
        "--1",
        "99999999999999999999",
        "+",
        "-",
    ],
)
def test_expire_and_ttl_must_be_plain_integers(seeded, verb, name, bad):
    params = {k: v for k, v in query(verb, key="k").items() if k not in ("expire", "ttl")}
    params[name] = bad
    assert_error(seeded.get(f"/{verb}", query_string=params), 400, "invalid_expire")


@pytest.mark.parametrize("verb", EXPIRY_VERBS)
def test_expire_and_ttl_together(seeded, verb):
    params = {**query(verb, key="k"), "expire": str(NOW + 5), "ttl": "5"}
    assert_error(seeded.get(f"/{verb}", query_string=params), 400, "conflicting_expiry")


@pytest.mark.parametrize("verb", ["increment", "decrement"])
@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "1.0",
        " 1",
        "1 ",
        "1_0",
        "\u0663",
        "\uff11",  # fullwidth digit one
        "0x1",
        "--1",
        "+-1",
        "9223372036854775808",
        "-9223372036854775809",
        "1" * 5000,
    ],
)
def test_amount_must_be_a_64_bit_integer(seeded, verb, bad):
    response = seeded.get(f"/{verb}", query_string={"key": "k", "value": bad})
    assert_error(response, 400, "not_an_integer")


@pytest.mark.parametrize(
    "stored",
    ["abc", "1.5", " 1", "\u0661", "9223372036854775808", "-9223372036854775809", ""],
)
def test_stored_value_must_be_a_64_bit_integer(client, store, stored):
    client.get("/set", query_string={"key": "k", "value": stored})
    before = state_of(store, "k")
    assert_error(client.get("/increment?key=k&value=1"), 400, "not_an_integer")
    assert state_of(store, "k") == before


@pytest.mark.parametrize("amount", ["9223372036854775807", "-9223372036854775808", "+0007"])
def test_amount_at_the_64_bit_edges_is_fine(client, amount):
    assert client.get("/increment", query_string={"key": "n", "value": amount}).status_code == 204
    assert client.get("/get?key=n").data.decode() == str(int(amount))


@pytest.mark.parametrize(
    "verb, start, amount",
    [
        ("increment", "9223372036854775807", "1"),
        ("increment", "-9223372036854775808", "-1"),
        ("decrement", "-9223372036854775808", "1"),
        ("decrement", "9223372036854775807", "-1"),
        ("decrement", "0", "-9223372036854775808"),
    ],
)
def test_overflow_is_an_error_never_a_wrap(client, store, verb, start, amount):
    client.get("/set", query_string={"key": "n", "value": start})
    before = state_of(store, "n")
    response = client.get(f"/{verb}", query_string={"key": "n", "value": amount})
    assert_error(response, 400, "overflow")
    assert state_of(store, "n") == before


def test_duplicate_single_parameter(seeded):
    assert_error(seeded.get("/set?key=k&key=other&value=2"), 400, "duplicate_parameter")
    assert_error(
        seeded.post("/set?key=k", data={"key": "k", "value": "2"}), 400, "duplicate_parameter"
    )


@pytest.mark.parametrize("verb", ["set", "append", "prepend", "add", "replace", "checkandset"])
def test_value_over_max_value_bytes_is_413(clock, verb):
    client = create_app(
        {"APP_ENV": "production", "MAX_VALUE_BYTES": 8, "CLOCK": clock}
    ).test_client()
    assert_error(
        client.get(f"/{verb}", query_string={**query(verb, key="k"), "value": "é" * 5}),
        413,
        "value_too_large",
    )


def test_body_larger_than_the_limit_is_413(clock):
    client = create_app(
        {"APP_ENV": "production", "MAX_VALUE_BYTES": 100, "CLOCK": clock}
    ).test_client()
    response = client.post("/set?key=k", data={"value": "x" * 200_000})
    assert_error(response, 413, "request_entity_too_large")


@pytest.mark.parametrize(
    "body, content_type, code, status",
    [
        (b"key=k&value=1", "text/plain", "unsupported_media_type", 415),
        (b"key=k&value=1", None, "unsupported_media_type", 415),
        (b"{not json", "application/json", "invalid_json", 400),
        (b"[1, 2]", "application/json", "invalid_body", 400),
        (b'"text"', "application/json", "invalid_body", 400),
        (b'{"key": "k", "value": null}', "application/json", "invalid_parameter", 400),
        (b'{"key": "k", "value": 1.5}', "application/json", "invalid_parameter", 400),
        (b'{"key": "k", "value": true}', "application/json", "invalid_parameter", 400),
        (b'{"key": "k", "value": {"a": 1}}', "application/json", "invalid_parameter", 400),
        (b'{"key": ["k", "j"], "value": "1"}', "application/json", "duplicate_parameter", 400),
    ],
)
def test_bad_bodies(seeded, body, content_type, code, status):
    headers = {"Content-Type": content_type} if content_type else {}
    response = seeded.post("/set", data=body, headers=headers)
    assert_error(response, status, code)


def test_every_error_names_what_was_wrong(client):
    response = client.get("/increment?key=n&value=ten")
    assert "ten" in response.json["message"]
    assert "value" in response.json["message"]
