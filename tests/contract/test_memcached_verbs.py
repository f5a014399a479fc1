"""API.md part 2: add, replace, touch, gat, ttl, mget, batch, ttl=, stats, memory cap."""

from __future__ import annotations

import pytest

from memflask import create_app
from memflask.store import item_bytes

NOW = 1_700_000_000


def get(client, key):
    response = client.get("/get", query_string={"key": key})
    return response.get_data(as_text=True) if response.status_code == 200 else None


# -- ttl= ----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["set", "add", "checkandset", "append", "increment"])
def test_ttl_is_relative_seconds_on_every_expiring_verb(client, clock, verb):
    extra = "&compare=x" if verb == "checkandset" else ""
    assert client.get(f"/{verb}?key=k&value=1&ttl=30{extra}").status_code == 204
    clock.tick(29.9)
    assert get(client, "k") == "1"
    clock.tick(0.1)
    assert get(client, "k") is None


def test_ttl_zero_never_expires_and_negative_is_already_expired(client, clock):
    client.get("/set?key=forever&value=1&ttl=0")
    client.get("/set?key=gone&value=1&ttl=-1")
    clock.tick(10**8)
    assert get(client, "forever") == "1"
    assert get(client, "gone") is None


# -- add / replace -------------------------------------------------------------------------


def test_add_sets_only_an_absent_key(client):
    assert client.get("/add?key=k&value=1").status_code == 204
    response = client.get("/add?key=k&value=2")
    assert response.status_code == 409
    assert response.json["error"] == "exists"
    assert get(client, "k") == "1"


def test_add_treats_an_expired_key_as_absent(client, clock):
    client.get("/set?key=k&value=old&ttl=1")
    clock.tick(1)
    assert client.get("/add?key=k&value=new").status_code == 204
    assert get(client, "k") == "new"


def test_replace_sets_only_a_present_key(client):
    response = client.get("/replace?key=k&value=1")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert get(client, "k") is None
    client.get("/set?key=k&value=1&ttl=5")
    assert client.get("/replace?key=k&value=2").status_code == 204
    assert get(client, "k") == "2"
    assert client.get("/ttl?key=k").json["ttl"] is None  # replace replaces the expiry, as set


# -- touch / gat / ttl ---------------------------------------------------------------------


def test_touch_gives_a_new_expiry(client, clock):
    client.get("/set?key=k&value=v&ttl=5")
    assert client.get("/touch?key=k&ttl=100").status_code == 204
    clock.tick(50)
    assert get(client, "k") == "v"
    assert client.get("/touch?key=k&expire=0").status_code == 204
    assert client.get("/ttl?key=k").json == {"key": "k", "ttl": None}


def test_touch_absent_key_is_404(client):
    response = client.get("/touch?key=k&ttl=5")
    assert response.status_code == 404
    assert get(client, "k") is None


def test_touch_needs_an_expiry(client):
    client.get("/set?key=k&value=v&ttl=5")
    response = client.get("/touch?key=k")
    assert response.status_code == 400
    assert response.json["error"] == "missing_parameter"
    assert client.get("/ttl?key=k").json["ttl"] == 5


def test_gat_answers_the_value_and_touches(client, clock):
    client.get("/set?key=k&value=v&ttl=5")
    response = client.get("/gat?key=k&ttl=60")
    assert response.status_code == 200
    assert response.data == b"v"
    assert response.headers["ETag"]
    clock.tick(30)
    assert get(client, "k") == "v"


def test_gat_absent_is_404_and_counts_a_miss(client):
    assert client.get("/gat?key=k&ttl=60").status_code == 404
    stats = client.get("/stats").json
    assert (stats["hits"], stats["misses"]) == (0, 1)


def test_ttl_reports_seconds_left(client, clock):
    client.get(f"/set?key=k&value=v&expire={NOW + 42}")
    assert client.get("/ttl?key=k").json == {"key": "k", "ttl": 42}
    clock.tick(0.5)
    assert client.get("/ttl?key=k").json["ttl"] == 42  # whole seconds, rounded up
    clock.tick(41)
    assert client.get("/ttl?key=k").json["ttl"] == 1
    clock.tick(0.5)
    assert client.get("/ttl?key=k").status_code == 404


def test_ttl_null_for_no_expiry_and_404_when_absent(client):
    client.get("/set?key=k&value=v")
    assert client.get("/ttl?key=k").json == {"key": "k", "ttl": None}
    assert client.get("/ttl?key=other").status_code == 404


# -- mget ----------------------------------------------------------------------------------


def test_mget_answers_the_hits(client, clock):
    client.get("/set?key=a&value=1")
    client.get("/set?key=b&value=2&ttl=1")
    client.get("/set?key=c&value=3")
    clock.tick(1)
    response = client.get("/mget?key=a&key=b&key=c&key=d")
    assert response.status_code == 200
    assert response.json == {"a": "1", "c": "3"}
    stats = client.get("/stats").json
    assert (stats["hits"], stats["misses"]) == (2, 2)


def test_mget_by_json_list(client):
    client.get("/set?key=a&value=1")
    assert client.post("/mget", json={"key": ["a", "b"]}).json == {"a": "1"}


def test_mget_validates_each_key_and_the_count(clock):
    client = create_app({"APP_ENV": "production", "MAX_BATCH": 3, "CLOCK": clock}).test_client()
    assert client.get("/mget").json["error"] == "missing_parameter"
    assert client.get("/mget?key=a&key=").json["error"] == "invalid_key"
    response = client.get("/mget?key=a&key=b&key=c&key=d")
    assert response.status_code == 400
    assert response.json["error"] == "too_many_keys"


# -- batch ---------------------------------------------------------------------------------


def test_batch_runs_in_order_with_each_commands_own_result(client):
    response = client.post(
        "/batch",
        json=[
            {"verb": "set", "key": "k", "value": "v"},
            {"verb": "get", "key": "k"},
            {"verb": "increment", "key": "k", "value": 1},
            {"verb": "get", "key": "missing"},
            {"verb": "add", "key": "k", "value": "x"},
            {"verb": "set", "key": "", "value": "x"},
            {"verb": "mget", "key": ["k", "missing"]},
            {"verb": "nosuchverb"},
        ],
    )
    assert response.status_code == 200
    results = response.json
    assert results[0] == {"status": 204}
    assert results[1] == {"status": 200, "value": "v"}
    assert results[2]["status"] == 400 and results[2]["error"] == "not_an_integer"
    assert results[3]["status"] == 404 and results[3]["error"] == "not_found"
    assert results[4]["status"] == 409 and results[4]["error"] == "exists"
    assert results[5]["status"] == 400 and results[5]["error"] == "invalid_key"
    assert results[6] == {"status": 200, "value": {"k": "v"}}
    assert results[7]["status"] == 404 and results[7]["error"] == "unknown_verb"
    assert get(client, "k") == "v"


def test_batch_counts_each_command(client):
    client.post(
        "/batch", json=[{"verb": "set", "key": "a", "value": "1"}, {"verb": "get", "key": "a"}]
    )
    commands = client.get("/stats").json["commands"]
    assert commands["batch"] == 1
    assert commands["set"] == 1
    assert commands["get"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"verb": "set", "key": "a", "value": "1"},  # not a list
        [{"verb": "set", "key": "a", "value": "1"}, "not an object"],
        [{"verb": "set", "key": "a", "value": "1"}, {"key": "no verb"}],
        [{"verb": "set", "key": "a", "value": "1"}, {"verb": 5}],
        [{"verb": "set", "key": "a", "value": "1"}, {"verb": "batch"}],
        [{"verb": "set", "key": "a", "value": "1"}, {"verb": "set", "key": "b", "value": None}],
    ],
)
def test_malformed_batch_is_400_and_runs_nothing(client, body):
    response = client.post("/batch", json=body)
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_batch", "invalid_parameter", "invalid_body")
    assert get(client, "a") is None


def test_batch_cap_is_configurable(clock):
    client = create_app({"APP_ENV": "production", "MAX_BATCH": 2, "CLOCK": clock}).test_client()
    commands = [{"verb": "set", "key": str(n), "value": "1"} for n in range(3)]
    response = client.post("/batch", json=commands)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_batch"
    assert client.get("/stats").json["keyCount"] == 0
    assert client.post("/batch", json=commands[:2]).status_code == 200


def test_batch_needs_a_body(client):
    response = client.get("/batch")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_batch"


# -- memory cap ----------------------------------------------------------------------------


def test_max_bytes_keeps_the_store_under_the_cap(clock):
    cap = 10 * item_bytes("k000", "x" * 96, None)  # what ten of these items take
    client = create_app({"APP_ENV": "production", "MAX_BYTES": cap, "CLOCK": clock}).test_client()
    for number in range(100):
        assert client.get(f"/set?key=k{number:03d}&value={'x' * 96}").status_code == 204
    stats = client.get("/stats").json
    assert stats["bytes"] <= cap
    assert stats["maxBytes"] == cap
    assert stats["keyCount"] == 10
    assert stats["evictions"] == 90
    assert get(client, "k099") is not None
    assert get(client, "k000") is None


def test_value_bigger_than_the_whole_cap_is_413_and_changes_nothing(clock):
    cap = item_bytes("a", "1", None) + 50  # "a" fits; "b" with 100 bytes of value does not
    client = create_app({"APP_ENV": "production", "MAX_BYTES": cap, "CLOCK": clock}).test_client()
    client.get("/set?key=a&value=1")
    response = client.get(f"/set?key=b&value={'x' * 100}")
    assert response.status_code == 413
    assert get(client, "a") == "1"
    assert get(client, "b") is None


@pytest.mark.parametrize("verb", ["append", "prepend"])
def test_append_past_max_value_bytes_is_413_and_changes_nothing(clock, verb):
    client = create_app(
        {"APP_ENV": "production", "MAX_VALUE_BYTES": 10, "CLOCK": clock}
    ).test_client()
    client.get("/set?key=k&value=123456")
    response = client.get(f"/{verb}?key=k&value=12345")
    assert response.status_code == 413
    assert response.json["error"] == "value_too_large"
    assert get(client, "k") == "123456"


@pytest.mark.parametrize("kind", ["query", "form", "json"])
def test_every_body_kind_accepts_values_up_to_max_value_bytes(client, kind):
    value = "é" * (512 * 1024)  # exactly 1 MiB of UTF-8
    if kind == "query":
        response = client.get("/set", query_string={"key": "big", "value": value})
    elif kind == "form":
        response = client.post("/set", data={"key": "big", "value": value})
    else:
        response = client.post("/set", json={"key": "big", "value": value})
    assert response.status_code == 204
    assert get(client, "big") == value
    response = client.post("/set", data={"key": "big", "value": value + "x"})
    assert response.status_code == 413


# -- stats ---------------------------------------------------------------------------------


@pytest.mark.memory_only("on Redis, bytes, expired and evictions are what Redis reports")
def test_stats_reports_every_counter(client, clock):
    client.get("/set?key=a&value=12")
    client.get("/set?key=b&value=1&ttl=1")
    client.get("/get?key=a")
    client.get("/get?key=zzz")
    clock.tick(1)
    client.get("/get?key=b")  # expired: a miss, and reclaimed
    stats = client.get("/stats").json
    assert stats["keyCount"] == 1
    assert stats["bytes"] == item_bytes("a", "12", None)  # memory, as MAX_BYTES counts it
    assert stats["hits"] == 1
    assert stats["misses"] == 2
    assert stats["expired"] == 1
    assert stats["evictions"] == 0
    assert stats["maxBytes"] == 64 * 1024 * 1024
    assert stats["commands"] == {"get": 3, "set": 2, "stats": 1}
    assert isinstance(stats["uptime"], int)
    assert stats["version"]
