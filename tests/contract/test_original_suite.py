"""A port of every case in the original Go server's own tests.

From api/api_test.go and cache/cache_test.go.

The original built a store of size 100, seeded it directly, then called one handler.
Here each case seeds through the store and asserts the status and the resulting state.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from memflask import create_app


@pytest.fixture
def app_config():
    return {"SIZE": 100}  # the original's tests built their store with new(100)


def seed(client, key, value):
    assert client.get("/set?" + urlencode({"key": key, "value": value})).status_code == 204


def value_of(client, key):
    response = client.get("/get?" + urlencode({"key": key}))
    return response.get_data(as_text=True) if response.status_code == 200 else None


def test_get_miss(client):
    assert client.get("/get?key=name").status_code == 404


def test_get_hit(client):
    seed(client, "name", "Andrew")
    response = client.get("/get?key=name")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Andrew"


def test_set(client):
    response = client.get("/set?" + urlencode({"key": "name", "value": "Alice", "expire": "0"}))
    assert response.status_code == 204
    assert value_of(client, "name") == "Alice"


def test_delete(client):
    seed(client, "name", "Alice")
    assert client.get("/delete?key=name").status_code == 204
    assert value_of(client, "name") is None


def test_check_and_set_fail(client):
    seed(client, "name", "Mary")
    query = urlencode({"key": "name", "value": "Alice", "expire": "0", "compare": "NotAlice"})
    assert client.get("/checkandset?" + query).status_code == 400
    assert value_of(client, "name") == "Mary"


def test_check_and_set_ok(client):
    seed(client, "name", "Mary")
    query = urlencode({"key": "name", "value": "Alice", "expire": "0", "compare": "Mary"})
    assert client.get("/checkandset?" + query).status_code == 204
    assert value_of(client, "name") == "Alice"


def test_increment(client):
    seed(client, "hits", "1")
    assert client.get("/increment?key=hits&value=1").status_code == 204
    assert value_of(client, "hits") == "2"


def test_decrement(client):
    seed(client, "hits", "1")
    assert client.get("/decrement?key=hits&value=1").status_code == 204
    assert value_of(client, "hits") == "0"


def test_append(client):
    seed(client, "name", "And")
    assert client.get("/append?key=name&value=y").status_code == 204
    assert value_of(client, "name") == "Andy"


def test_prepend(client):
    seed(client, "name", "ndy")
    assert client.get("/prepend?key=name&value=A").status_code == 204
    assert value_of(client, "name") == "Andy"


def test_flush(client):
    seed(client, "name", "Alice")
    assert client.get("/flush").status_code == 204
    assert value_of(client, "name") is None


@pytest.mark.memory_only("maxSize is SIZE, which Redis's maxmemory replaces")
def test_stats(client):
    # The original only checked the status ("could parse the stats"): we check the numbers.
    seed(client, "name", "Mary")
    response = client.get("/stats")
    assert response.status_code == 200
    assert response.json["keyCount"] == 1
    assert response.json["maxSize"] == 100


def test_lru_size(clock):
    client = create_app({"APP_ENV": "production", "SIZE": 1, "CLOCK": clock}).test_client()
    seed(client, "name", "Andrew")
    assert value_of(client, "name") == "Andrew"
    seed(client, "place", "Moon")
    assert value_of(client, "name") is None


def test_lru_expiring(client):
    # Expire time 1 is 1970: the key is stored already expired and never returned.
    assert client.get("/set?key=name&value=Andrew&expire=1").status_code == 204
    assert value_of(client, "name") is None
