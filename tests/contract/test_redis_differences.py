"""Contract cases the Redis backend once answered differently; they run on both backends.

Expiry extremes: a far-future expiry is stored and readable (Redis refused the out-of-range
PEXPIRE with a 500 after writing the value), a far-past one is stored already expired.
"""

from __future__ import annotations

import pytest

INT64_MAX = "9223372036854775807"
INT64_MIN = "-9223372036854775808"
EXPIRING_WRITES = ["set", "add", "checkandset", "increment", "decrement", "append", "prepend"]


def get(client, key: str):
    response = client.get("/get", query_string={"key": key})
    return response.data.decode() if response.status_code == 200 else response.status_code


@pytest.mark.parametrize("verb", EXPIRING_WRITES)
@pytest.mark.parametrize("expiry", ["ttl", "expire"])
def test_a_far_future_expiry_is_stored_and_never_expires_in_practice(client, clock, verb, expiry):
    query = {"key": "k", "value": "5", "compare": "", expiry: INT64_MAX}
    assert client.get(f"/{verb}", query_string=query).status_code == 204
    clock.tick(10 * 365 * 24 * 3600)
    assert get(client, "k") == "5"
    assert client.get("/ttl?key=k").json["ttl"] > 0


@pytest.mark.parametrize("verb", EXPIRING_WRITES)
@pytest.mark.parametrize("expiry", ["ttl", "expire"])
def test_a_far_past_expiry_stores_the_item_already_expired(client, verb, expiry):
    query = {"key": "k", "value": "5", "compare": "", expiry: INT64_MIN}
    assert client.get(f"/{verb}", query_string=query).status_code == 204
    assert get(client, "k") == 404


@pytest.mark.parametrize("ttl", [INT64_MAX, INT64_MIN, "1", "0"])
def test_touch_and_gat_take_any_expiry(client, ttl):
    client.get("/set?key=k&value=v")
    assert client.get(f"/touch?key=k&ttl={ttl}").status_code == 204
    assert client.get("/set?key=g&value=w").status_code == 204
    assert client.get(f"/gat?key=g&ttl={ttl}").status_code == 200
    expected = 404 if ttl == INT64_MIN else "v"
    assert get(client, "k") == expected


def test_ttl_of_a_far_future_item_is_clamped_to_int64(client):
    client.get(f"/set?key=k&value=v&ttl={INT64_MAX}")
    assert client.get("/ttl?key=k").json == {"key": "k", "ttl": int(INT64_MAX)}


def test_an_increment_keeps_a_far_future_expiry(client, clock):
    client.get(f"/set?key=n&value=1&expire={INT64_MAX}")
    assert client.get("/increment?key=n&value=2").status_code == 204
    clock.tick(3600)
    assert get(client, "n") == "3"
    assert client.get("/ttl?key=n").json["ttl"] > 10**17
