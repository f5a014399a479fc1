"""API.md part 1: every route of the original, through Flask's test client."""

from __future__ import annotations

import pytest
from freezegun import freeze_time

from memflask import create_app

NOW = 1_700_000_000  # the FakeClock's start


def get(client, key):
    response = client.get("/get", query_string={"key": key})
    return response.get_data(as_text=True) if response.status_code == 200 else None


def stats(client):
    return client.get("/stats").json


# -- set / get / delete ------------------------------------------------------------------


def test_get_answers_text_plain(client):
    client.get("/set?key=k&value=v")
    response = client.get("/get?key=k")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.data == b"v"


def test_get_miss_is_json_404(client):
    response = client.get("/get?key=nothing")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "no such key"}


def test_set_overwrites(client):
    client.get("/set?key=k&value=1")
    client.get("/set?key=k&value=2")
    assert get(client, "k") == "2"


def test_empty_value_is_a_value(client):
    assert client.get("/set?key=k&value=").status_code == 204
    response = client.get("/get?key=k")
    assert response.status_code == 200
    assert response.data == b""


def test_delete_absent_key_is_204(client):
    assert client.get("/delete?key=never").status_code == 204


def test_answers_without_a_body_carry_no_content_type(client):
    response = client.get("/set?key=k&value=v")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers
    assert response.data == b""


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_route_answers_get_and_post(client, method):
    for target in [
        "/set?key=k&value=1",
        "/get?key=k",
        "/increment?key=k&value=1",
        "/decrement?key=k&value=1",
        "/append?key=k&value=2",
        "/prepend?key=k&value=0",
        "/checkandset?key=k&value=x&compare=012",
        "/stats",
        "/delete?key=k",
        "/flush",
    ]:
        response = client.open(target, method=method)
        assert response.status_code in (200, 204), (target, response.json)


def test_post_form_body(client):
    response = client.post("/set", data={"key": "k", "value": "a b&c=d"})
    assert response.status_code == 204
    assert get(client, "k") == "a b&c=d"


def test_post_json_body(client):
    response = client.post("/set", json={"key": "k", "value": "v", "expire": NOW + 10})
    assert response.status_code == 204
    assert get(client, "k") == "v"
    assert client.get("/ttl?key=k").json["ttl"] == 10


def test_post_json_integer_value_is_its_decimal_text(client):
    client.post("/set", json={"key": "n", "value": 41})
    client.post("/increment", json={"key": "n", "value": 1})
    assert get(client, "n") == "42"


def test_query_and_body_combine(client):
    assert client.post("/set?key=k", data={"value": "from body"}).status_code == 204
    assert get(client, "k") == "from body"


def test_plus_in_query_is_a_space_as_in_any_form_encoding(client):
    client.get("/set?key=k&value=a+b%2Bc")
    assert get(client, "k") == "a b+c"


# -- expire ------------------------------------------------------------------------------


@pytest.mark.parametrize("expire", [None, "", "0"])
def test_absent_empty_or_zero_expire_never_expires(client, clock, expire):
    query = {"key": "k", "value": "v"}
    if expire is not None:
        query["expire"] = expire
    client.get("/set", query_string=query)
    clock.tick(10**9)
    assert get(client, "k") == "v"


def test_expire_is_absolute_unix_seconds_exact_to_the_second(client, clock):
    client.get(f"/set?key=k&value=v&expire={NOW + 5}")
    clock.tick(4.999)
    assert get(client, "k") == "v"
    clock.tick(0.001)
    assert get(client, "k") is None


@pytest.mark.parametrize("offset", [0, -1, -(10**6)])
def test_expire_at_or_before_now_is_stored_already_expired(client, offset):
    client.get("/set?key=k&value=old")
    assert client.get(f"/set?key=k&value=v&expire={NOW + offset}").status_code == 204
    assert get(client, "k") is None


def test_set_without_expire_clears_previous_expiry(client, clock):
    client.get(f"/set?key=k&value=v&expire={NOW + 5}")
    client.get("/set?key=k&value=v2")
    clock.tick(10)
    assert get(client, "k") == "v2"


def test_checkandset_replaces_expiry(client, clock):
    client.get(f"/set?key=k&value=v&expire={NOW + 5}")
    client.get("/checkandset?key=k&value=v2&compare=v")
    clock.tick(10)
    assert get(client, "k") == "v2"


@pytest.mark.parametrize("verb", ["increment", "decrement", "append", "prepend"])
def test_modifying_writes_keep_existing_expiry(client, clock, verb):
    client.get(f"/set?key=k&value=5&expire={NOW + 5}")
    assert client.get(f"/{verb}?key=k&value=1").status_code == 204
    clock.tick(4)
    assert get(client, "k") is not None
    clock.tick(1)
    assert get(client, "k") is None


@pytest.mark.parametrize("verb", ["increment", "decrement", "append", "prepend"])
def test_modifying_writes_take_a_new_expiry_when_given(client, clock, verb):
    client.get(f"/set?key=k&value=5&expire={NOW + 5}")
    client.get(f"/{verb}?key=k&value=1&expire={NOW + 50}")
    clock.tick(10)
    assert get(client, "k") is not None
    clock.tick(40)
    assert get(client, "k") is None


@pytest.mark.parametrize("verb", ["increment", "decrement", "append", "prepend"])
def test_modifying_write_with_expire_zero_removes_the_expiry(client, clock, verb):
    client.get(f"/set?key=k&value=5&expire={NOW + 5}")
    client.get(f"/{verb}?key=k&value=1&expire=0")
    clock.tick(100)
    assert get(client, "k") is not None


@pytest.mark.parametrize(
    "verb, query",
    [
        ("get", ""),
        ("increment", "&value=1"),
        ("decrement", "&value=1"),
        ("append", "&value=x"),
        ("prepend", "&value=x"),
        ("checkandset", "&value=new&compare=anything"),
    ],
)
def test_expired_key_is_absent_for_every_verb(client, clock, verb, query):
    client.get(f"/set?key=k&value=old&expire={NOW + 1}")
    clock.tick(1)
    response = client.get(f"/{verb}?key=k{query}")
    if verb == "get":
        assert response.status_code == 404
        return
    # Every write treats the expired key as absent, so it is set to the given value,
    # with no expiry carried over.
    assert response.status_code == 204
    expected = {"checkandset": "new"}.get(verb, "x" if "x" in query else "1")
    assert get(client, "k") == expected
    clock.tick(100)
    assert get(client, "k") == expected


def test_expiry_through_freezegun_entered_before_create_app():
    with freeze_time("2031-05-01 12:00:00") as frozen:
        client = create_app({"APP_ENV": "production"}).test_client()
        now = 1935403200  # 2031-05-01 12:00:00 UTC
        client.get(f"/set?key=k&value=v&expire={now + 3}")
        frozen.tick(2)
        assert get(client, "k") == "v"
        frozen.tick(1)
        assert get(client, "k") is None


# -- checkandset ---------------------------------------------------------------------------


def test_checkandset_sets_absent_key(client):
    assert client.get("/checkandset?key=k&value=v&compare=whatever").status_code == 204
    assert get(client, "k") == "v"


def test_checkandset_mismatch_is_400_and_changes_nothing(client, clock):
    client.get(f"/set?key=k&value=v&expire={NOW + 100}")
    response = client.get(f"/checkandset?key=k&value=new&compare=other&expire={NOW + 5}")
    assert response.status_code == 400
    assert response.json["error"] == "compare_mismatch"
    assert get(client, "k") == "v"
    clock.tick(50)
    assert get(client, "k") == "v"


def test_checkandset_empty_compare_matches_empty_value(client):
    client.get("/set?key=k&value=")
    assert client.get("/checkandset?key=k&value=v&compare=").status_code == 204
    assert get(client, "k") == "v"


# -- increment / decrement -------------------------------------------------------------------


def test_increment_absent_key_sets_it(client):
    assert client.get("/increment?key=n&value=5").status_code == 204
    assert get(client, "n") == "5"


def test_decrement_absent_key_sets_it_to_value_as_the_original_documents(client):
    assert client.get("/decrement?key=n&value=5").status_code == 204
    assert get(client, "n") == "5"


def test_decrement_below_zero_is_signed(client):
    client.get("/set?key=n&value=1")
    client.get("/decrement?key=n&value=3")
    assert get(client, "n") == "-2"


def test_increment_negative_amount(client):
    client.get("/set?key=n&value=10")
    client.get("/increment?key=n&value=-4")
    assert get(client, "n") == "6"


def test_increment_accepts_leading_plus(client):
    client.get("/set?key=n&value=%2B10")
    client.get("/increment?key=n&value=%2B1")
    assert get(client, "n") == "11"


def test_increment_non_integer_stored_value_is_400_and_changes_nothing(client):
    client.get("/set?key=k&value=abc")
    response = client.get("/increment?key=k&value=1")
    assert response.status_code == 400
    assert response.json["error"] == "not_an_integer"
    assert get(client, "k") == "abc"


# -- append / prepend --------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["append", "prepend"])
def test_append_and_prepend_set_an_absent_key(client, verb):
    assert client.get(f"/{verb}?key=k&value=v").status_code == 204
    assert get(client, "k") == "v"


# -- flush / stats / SIZE --------------------------------------------------------------------


def test_flush_empties_the_cache(client):
    for key in "abc":
        client.get(f"/set?key={key}&value=1")
    assert client.get("/flush").status_code == 204
    assert stats(client)["keyCount"] == 0
    assert all(get(client, key) is None for key in "abc")


def test_stats_counts_keys_but_not_expired_ones(client, clock):
    client.get("/set?key=a&value=1")
    client.get(f"/set?key=b&value=1&expire={NOW + 1}")
    assert stats(client)["keyCount"] == 2
    clock.tick(1)
    assert stats(client)["keyCount"] == 1


def test_stats_is_json_with_key_count_and_max_size(client):
    response = client.get("/stats")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["keyCount"] == 0
    assert response.json["maxSize"] == 0


def test_size_caps_keys_with_lru_eviction(clock):
    client = create_app({"APP_ENV": "production", "SIZE": 2, "CLOCK": clock}).test_client()
    client.get("/set?key=a&value=1")
    client.get("/set?key=b&value=2")
    client.get("/get?key=a")
    client.get("/set?key=c&value=3")
    assert get(client, "b") is None
    assert get(client, "a") == "1"
    assert get(client, "c") == "3"
    assert stats(client)["keyCount"] == 2
    assert stats(client)["maxSize"] == 2


# -- the HTTP surface ------------------------------------------------------------------------


def test_unknown_verb_is_json_404(client):
    response = client.get("/nosuchverb")
    assert response.status_code == 404
    assert response.json["error"] == "unknown_verb"


@pytest.mark.parametrize("path", ["/", "/get/extra", "/a/b/c"])
def test_unknown_path_is_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert set(response.json) == {"error", "message"}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_json_405(client, method):
    client.get("/set?key=k&value=v")
    response = client.open("/set?key=k&value=changed", method=method)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    assert get(client, "k") == "v"


def test_head_on_a_read_answers_headers_only(client):
    client.get("/set?key=k&value=hello")
    response = client.head("/get?key=k")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "5"


def test_head_on_a_write_is_405_and_changes_nothing(client):
    response = client.head("/set?key=k&value=v")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert get(client, "k") is None
