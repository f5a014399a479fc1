"""Leases and stale-while-revalidate (memcached's meta-protocol answer to stampedes), over
raw HTTP, on every backend and server, on the test's clock."""

from __future__ import annotations

import re

import pytest

from tests.harness.servers import state_of

TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


def lease_read(client, key="k", **params):
    return client.get("/get", query_string={"key": key, "lease": 30, **params})


def token_of(response):
    token = response.headers.get("Lease")
    assert token is not None and TOKEN.fullmatch(token), response.headers
    return token


def test_a_miss_gives_the_first_reader_a_lease_and_tells_the_others_when_it_ends(client, clock):
    first = lease_read(client)
    assert first.status_code == 404
    assert first.json["error"] == "not_found"
    token_of(first)
    assert "Retry-After" not in first.headers
    second = lease_read(client)
    assert second.status_code == 404
    assert "Lease" not in second.headers
    assert second.headers["Retry-After"] == "30"
    clock.tick(10.5)
    assert lease_read(client).headers["Retry-After"] == "20"  # rounded up, at least 1
    clock.tick(19)
    assert lease_read(client).headers["Retry-After"] == "1"
    clock.tick(1)  # the lease ran out: the next reader gets one
    token_of(lease_read(client))


def test_the_lease_holder_fills_the_key_and_the_others_then_hit(client):
    token = token_of(lease_read(client))
    assert (
        client.get("/set", query_string={"key": "k", "value": "v", "lease": token}).status_code
        == 204
    )
    hit = lease_read(client)
    assert hit.status_code == 200
    assert hit.data == b"v"
    assert "Lease" not in hit.headers
    assert "Cache-Status" not in hit.headers


def test_a_lease_is_used_once(client):
    token = token_of(lease_read(client))
    client.get("/set", query_string={"key": "k", "value": "1", "lease": token})
    again = client.get("/set", query_string={"key": "k", "value": "2", "lease": token})
    assert again.status_code == 412
    assert again.json["error"] == "precondition_failed"
    assert client.get("/get?key=k").data == b"1"


@pytest.mark.parametrize(
    "interruption",
    ["/set?key=k&value=other", "/delete?key=k", "/add?key=k&value=1", "/invalidate?key=k"],
)
def test_another_change_ends_the_lease(client, interruption):
    client.get("/set?key=k&value=1")
    client.get("/invalidate?key=k")  # stale: the next lease reader gets a lease
    token = token_of(lease_read(client))
    if interruption == "/invalidate?key=k":
        client.get("/set?key=k&value=1")
    client.get(interruption)
    write = client.get("/set", query_string={"key": "k", "value": "late", "lease": token})
    assert write.status_code == 412
    assert client.get("/get?key=k").data != b"late"


def test_a_lease_ends_with_its_time(client, clock):
    token = token_of(lease_read(client, lease=5))
    clock.tick(5)
    write = client.get("/set", query_string={"key": "k", "value": "v", "lease": token})
    assert write.status_code == 412
    assert client.get("/get?key=k").status_code == 404


def test_a_forged_or_another_key_s_token_is_refused_and_changes_nothing(client, store):
    token = token_of(lease_read(client))
    client.get("/set?key=other&value=1")
    before = state_of(store, "other")
    for forged in ("A" * 22, token):
        write = client.get("/set", query_string={"key": "other", "value": "2", "lease": forged})
        assert write.status_code == 412
    assert state_of(store, "other") == before
    # The real holder still holds it.
    assert (
        client.get("/set", query_string={"key": "k", "value": "v", "lease": token}).status_code
        == 204
    )


@pytest.mark.parametrize(
    "query, code",
    [
        ("/get?key=k&lease=0", "invalid_duration"),
        ("/get?key=k&lease=3601", "invalid_duration"),
        ("/get?key=k&lease=ten", "invalid_duration"),
        ("/get?key=k&lease=-1", "invalid_duration"),
        ("/get?key=k&lease=30&recache=0", "invalid_duration"),
        ("/get?key=k&recache=5", "missing_parameter"),
        ("/set?key=k&value=v&stale=0", "invalid_duration"),
        ("/set?key=k&value=v&stale=x", "invalid_duration"),
        ("/set?key=k&value=v&stale=2592001", "invalid_duration"),
        ("/set?key=k&value=v&lease=not%20a%20token", "invalid_lease"),
        ("/set?key=k&value=v&lease=" + "a" * 65, "invalid_lease"),
        ("/invalidate", "missing_parameter"),
    ],
)
def test_bad_lease_stale_and_recache_values_are_refused(client, store, query, code):
    client.get("/set?key=k&value=kept")
    before = state_of(store, "k")
    response = client.get(query)
    assert response.status_code == 400, response.data
    assert response.json["error"] == code
    assert "Lease" not in response.headers
    assert state_of(store, "k") == before
    assert token_of(lease_read(client, key="fresh-key"))  # no lease was taken on refusal


def test_invalidate_makes_the_item_stale_for_lease_readers_only(client, clock):
    client.get("/set?key=k&value=old")
    assert client.get("/invalidate?key=k").status_code == 204
    assert client.get("/get?key=k").status_code == 404  # as after a delete
    assert client.get("/mget?key=k").json == {}
    assert client.get("/ttl?key=k").status_code == 404
    clock.tick(3)
    first = lease_read(client)
    assert first.status_code == 200
    assert first.data == b"old"
    assert first.headers["Cache-Status"] == "memflask; hit; ttl=-3"
    token = token_of(first)
    second = lease_read(client)
    assert second.status_code == 200
    assert second.data == b"old"
    assert "Lease" not in second.headers
    assert second.headers["Cache-Status"].startswith("memflask; hit; ttl=-")
    client.get("/set", query_string={"key": "k", "value": "new", "lease": token})
    fresh = lease_read(client)
    assert (fresh.status_code, fresh.data) == (200, b"new")
    assert "Cache-Status" not in fresh.headers


def test_invalidating_an_absent_key_is_404(client):
    response = client.get("/invalidate?key=nothing")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    client.get("/set?key=k&value=v")
    client.get("/invalidate?key=k")
    assert client.get("/invalidate?key=k").status_code == 404  # stale is not live


def test_an_invalidated_item_goes_with_its_expiry(client, clock):
    client.get("/set?key=k&value=v&ttl=10")
    client.get("/invalidate?key=k")
    assert lease_read(client).status_code == 200
    clock.tick(10)
    gone = lease_read(client)
    assert gone.status_code == 404
    assert "Lease" not in gone.headers  # the first stale read took it, and holds it still


@pytest.mark.parametrize("removal", ["/delete?key=k", "/flush", "/flush?prefix=k"])
def test_delete_and_flush_remove_a_stale_item(client, removal):
    client.get("/set?key=k&value=v")
    client.get("/invalidate?key=k")
    client.get(removal)
    response = lease_read(client)
    assert response.status_code == 404
    token_of(response)  # the invalidation ended any lease, and nothing read it since


def test_a_stale_window_keeps_an_expired_item_for_lease_readers(client, clock):
    client.get("/set?key=k&value=v&ttl=10&stale=60")
    clock.tick(12)
    assert client.get("/get?key=k").status_code == 404
    stale = lease_read(client)
    assert (stale.status_code, stale.data) == (200, b"v")
    assert stale.headers["Cache-Status"] == "memflask; hit; ttl=-2"
    token_of(stale)
    clock.tick(58)  # 70 s after the write: the window has passed
    gone = lease_read(client, key="k")
    assert gone.status_code == 404


def test_without_stale_an_expired_item_is_a_plain_miss(client, clock):
    client.get("/set?key=k&value=v&ttl=10")
    clock.tick(10)
    response = lease_read(client)
    assert response.status_code == 404
    token_of(response)


def test_a_write_without_stale_drops_the_window(client, clock):
    client.get("/set?key=k&value=v&ttl=10&stale=60")
    client.get("/set?key=k&value=w&ttl=10")
    clock.tick(11)
    assert lease_read(client).status_code == 404


def test_recache_gives_one_reader_of_an_item_about_to_expire_a_lease(client, clock):
    client.get("/set?key=k&value=v&ttl=100")
    early = lease_read(client, recache=10)
    assert (early.status_code, early.data) == (200, b"v")
    assert "Lease" not in early.headers
    clock.tick(95)
    first = lease_read(client, recache=10)
    assert first.data == b"v"
    token = token_of(first)
    assert "Lease" not in lease_read(client, recache=10).headers
    assert (
        client.get(
            "/set", query_string={"key": "k", "value": "w", "ttl": 100, "lease": token}
        ).status_code
        == 204
    )
    clock.tick(95)
    assert "Lease" not in lease_read(client).headers  # no recache asked: a plain hit


def test_recache_never_leases_an_item_that_does_not_expire(client):
    client.get("/set?key=k&value=v")
    assert "Lease" not in lease_read(client, recache=3600).headers


def test_a_lease_read_of_a_fresh_item_answers_as_a_plain_get(client):
    written = client.get("/set?key=k&value=v", headers={"Prefer": "return=representation"})
    tag = written.headers["ETag"]
    response = lease_read(client)
    assert response.headers["ETag"] == tag
    assert lease_read(client, key="k", **{}).status_code == 200
    not_modified = client.get("/get?key=k&lease=30", headers={"If-None-Match": tag})
    assert not_modified.status_code == 304


def test_lease_writes_work_on_every_storing_verb(client):
    for verb, extra in [("set", {}), ("add", {}), ("checkandset", {"compare": "x"})]:
        key = f"k-{verb}"
        token = token_of(lease_read(client, key=key))
        response = client.get(
            f"/{verb}", query_string={"key": key, "value": "v", "lease": token, **extra}
        )
        assert response.status_code == 204, (verb, response.data)
    client.get("/set?key=r&value=1")
    client.get("/invalidate?key=r")
    token = token_of(lease_read(client, key="r"))
    # replace: a stale item is absent to every verb but a lease read
    assert (
        client.get("/replace", query_string={"key": "r", "value": "v", "lease": token}).status_code
        == 404
    )


def test_stats_count_leases_stale_answers_and_fills(client):
    before = client.get("/stats").json
    token = token_of(lease_read(client))
    lease_read(client)
    client.get("/set", query_string={"key": "k", "value": "v", "lease": token})
    client.get("/invalidate?key=k")
    lease_read(client)
    lease_read(client)
    after = client.get("/stats").json
    assert after["leases"] - before["leases"] == 2
    assert after["staleAnswers"] - before["staleAnswers"] == 2
    assert after["leaseFills"] - before["leaseFills"] == 1


def test_a_batch_entry_carries_the_lease(client):
    answer = client.post(
        "/batch",
        json=[
            {"verb": "get", "key": "k", "lease": 30},
            {"verb": "get", "key": "k", "lease": 30},
        ],
    ).json
    assert answer[0]["status"] == 404
    assert TOKEN.fullmatch(answer[0]["lease"])
    assert answer[1]["status"] == 404
    assert answer[1]["retryAfter"] == "30"
    assert "lease" not in answer[1]
    filled = client.post(
        "/batch", json=[{"verb": "set", "key": "k", "value": "v", "lease": answer[0]["lease"]}]
    ).json
    assert filled == [{"status": 204}]


def test_a_write_already_expired_keeps_no_stale_item(client):
    client.get("/set?key=k&value=v&ttl=-1&stale=60")
    response = lease_read(client)
    assert response.status_code == 404
    token_of(response)
