"""HTTP's own check-and-set: ETag, If-Match, If-None-Match; and Prefer: return=representation."""

from __future__ import annotations

import pytest

from tests.harness.servers import state_of


def etag_of(client, key):
    return client.get("/get", query_string={"key": key}).headers["ETag"]


def test_get_sends_an_etag_that_changes_on_every_write(client):
    client.get("/set?key=k&value=v")
    first = etag_of(client, "k")
    assert first.startswith('"') and first.endswith('"')
    assert etag_of(client, "k") == first  # reads do not change it
    client.get("/set?key=k&value=v")  # the same value, but a new write
    assert etag_of(client, "k") != first


def test_write_answers_the_new_etag(client):
    response = client.get("/set?key=k&value=v")
    assert response.headers["ETag"] == etag_of(client, "k")


def test_if_none_match_on_get_gives_304(client):
    client.get("/set?key=k&value=v")
    tag = etag_of(client, "k")
    response = client.get("/get?key=k", headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == tag
    client.get("/append?key=k&value=2")
    response = client.get("/get?key=k", headers={"If-None-Match": tag})
    assert response.status_code == 200
    assert response.data == b"v2"


def test_if_none_match_weak_tag_and_lists_match_on_get(client):
    client.get("/set?key=k&value=v")
    tag = etag_of(client, "k")
    assert (
        client.get("/get?key=k", headers={"If-None-Match": f'"other", W/{tag}'}).status_code == 304
    )


@pytest.mark.parametrize(
    "verb, params",
    [
        ("set", "value=new"),
        ("append", "value=new"),
        ("increment", "value=1"),
        ("delete", ""),
        ("touch", "ttl=5"),
        ("checkandset", "value=new&compare=1"),
        ("replace", "value=new"),
    ],
)
def test_if_match_applies_only_while_the_tag_is_current(client, store, verb, params):
    client.get("/set?key=k&value=1")
    stale = etag_of(client, "k")
    client.get("/set?key=k&value=1")
    current = etag_of(client, "k")

    before = state_of(store, "k")
    response = client.get(f"/{verb}?key=k&{params}", headers={"If-Match": stale})
    assert response.status_code == 412
    assert response.json["error"] == "precondition_failed"
    assert state_of(store, "k") == before

    response = client.get(f"/{verb}?key=k&{params}", headers={"If-Match": current})
    assert response.status_code == 204


def test_if_match_on_an_absent_key_fails(client):
    response = client.get("/set?key=k&value=v", headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert client.get("/get?key=k").status_code == 404


def test_if_match_star_needs_the_key_present(client):
    assert client.get("/set?key=k&value=v", headers={"If-Match": "*"}).status_code == 412
    client.get("/set?key=k&value=v")
    assert client.get("/set?key=k&value=w", headers={"If-Match": "*"}).status_code == 204


def test_if_match_ignores_weak_tags(client):
    client.get("/set?key=k&value=v")
    tag = etag_of(client, "k")
    assert client.get("/set?key=k&value=w", headers={"If-Match": f"W/{tag}"}).status_code == 412


def test_if_none_match_star_on_a_write_applies_only_when_absent(client):
    assert client.get("/set?key=k&value=1", headers={"If-None-Match": "*"}).status_code == 204
    response = client.get("/set?key=k&value=2", headers={"If-None-Match": "*"})
    assert response.status_code == 412
    assert client.get("/get?key=k").data == b"1"


def test_prefer_return_representation_answers_the_stored_value(client):
    response = client.get("/increment?key=n&value=5", headers={"Prefer": "return=representation"})
    assert response.status_code == 200
    assert response.data == b"5"
    assert response.mimetype == "text/plain"
    response = client.get("/increment?key=n&value=2", headers={"Prefer": "return=representation"})
    assert response.data == b"7"
    assert response.headers["ETag"] == etag_of(client, "n")


@pytest.mark.parametrize(
    "verb, params, expected",
    [
        ("set", "value=a", "a"),
        ("append", "value=b", "xb"),
        ("prepend", "value=b", "bx"),
        ("decrement", "value=1", None),
        ("touch", "ttl=9", "x"),
    ],
)
def test_prefer_works_on_every_write(client, verb, params, expected):
    client.get("/set?key=k&value=x")
    response = client.get(
        f"/{verb}?key=k&{params}", headers={"Prefer": "handling=lenient, return=representation"}
    )
    if expected is None:
        assert response.status_code == 400  # "x" is not an integer: errors stay errors
        return
    assert response.status_code == 200
    assert response.data.decode() == expected


def test_without_prefer_writes_answer_204(client):
    assert client.get("/set?key=k&value=x", headers={"Prefer": "return=minimal"}).status_code == 204
