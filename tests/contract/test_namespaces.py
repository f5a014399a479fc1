"""Namespaces: /flush?prefix= removes one prefix's keys, /keys lists them page by page."""

from __future__ import annotations

import threading
import time

import pytest

from memflask.store import MemoryStore


def fill(client, keys: list[str]) -> None:
    response = client.post(
        "/batch", json=[{"verb": "set", "key": key, "value": "v"} for key in keys]
    )
    assert response.status_code == 200


def list_all(client, prefix: str = "", limit: int = 7) -> list[str]:
    """Every key of a whole scan, following the cursor (bounded in pages)."""
    keys: list[str] = []
    cursor = ""
    for _ in range(1000):
        answer = client.get(
            "/keys", query_string={"prefix": prefix, "cursor": cursor, "limit": limit}
        )
        assert answer.status_code == 200, answer.json
        assert len(answer.json["keys"]) <= limit
        keys.extend(answer.json["keys"])
        cursor = answer.json["cursor"]
        if not cursor:
            return keys
    raise AssertionError("the scan never ended")


def test_flush_with_a_prefix_removes_only_those_keys(client):
    fill(client, ["app1:a", "app1:b", "app1:c", "app2:a", "app10:z"])
    answer = client.get("/flush?prefix=app1:")
    assert answer.status_code == 200
    assert answer.json == {"flushed": 3}
    assert sorted(list_all(client)) == ["app10:z", "app2:a"]
    assert client.get("/flush?prefix=app1:").json == {"flushed": 0}


def test_flush_without_a_prefix_still_flushes_everything(client):
    fill(client, ["a", "b"])
    assert client.get("/flush").status_code == 204
    assert client.get("/flush?prefix=").status_code == 204
    assert list_all(client) == []


def test_keys_lists_a_prefix_page_by_page(client):
    wanted = [f"user:{index}" for index in range(23)]
    fill(client, [*wanted, "other:1", "user", "users:1"])
    assert sorted(list_all(client, "user:")) == sorted(wanted)
    assert len(set(list_all(client))) == 26


@pytest.mark.parametrize("prefix", ["a*", "a?", "a[b]", "a\\"])
def test_a_prefix_is_literal_never_a_pattern(client, prefix):
    fill(client, [f"{prefix}1", "ab1", "ax1"])
    assert list_all(client, prefix) == [f"{prefix}1"]
    assert client.get("/flush", query_string={"prefix": prefix}).json == {"flushed": 1}
    assert sorted(list_all(client)) == ["ab1", "ax1"]


def test_expired_keys_are_not_listed(client, clock):
    client.get("/set?key=short&value=v&ttl=5")
    client.get("/set?key=long&value=v&ttl=500")
    clock.tick(10)
    assert list_all(client) == ["long"]


def test_keys_present_for_the_whole_scan_are_listed_even_as_others_change(client):
    steady = [f"steady:{index}" for index in range(30)]
    fill(client, steady)
    seen: list[str] = []
    cursor = ""
    for page in range(1000):
        answer = client.get(
            "/keys", query_string={"prefix": "steady:", "cursor": cursor, "limit": 4}
        )
        seen.extend(answer.json["keys"])
        # Meanwhile: reads move keys in the LRU order, new keys come, others go.
        client.get(f"/get?key=steady:{page % 30}")
        client.get(f"/set?key=steady:new{page}&value=v")
        client.get(f"/delete?key=steady:new{page - 1}")
        cursor = answer.json["cursor"]
        if not cursor:
            break
    assert set(steady) <= set(seen)


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5"])
def test_a_bad_limit_is_refused(client, limit):
    answer = client.get("/keys", query_string={"limit": limit})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_limit"


# Redis's own SCAN cursors too: memflask seals every cursor it gives (memflask/store/scans.py).
@pytest.mark.parametrize("cursor", ["nonsense", "999999-0", "-1", "1-x", "0", "17"])
def test_a_cursor_the_server_never_gave_is_refused(client, cursor):
    answer = client.get("/keys", query_string={"cursor": cursor})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_cursor"


def test_flushing_a_prefix_is_a_write_and_listing_is_a_read(client):
    fill(client, ["k"])
    assert (
        client.get("/flush?prefix=k", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    )
    assert client.head("/keys").status_code == 200


@pytest.mark.memory_only("the lock is the memory store's")
def test_a_prefix_flush_of_many_keys_lets_reads_through_meanwhile(clock):
    """Reads finish during the flush: it never holds the store's lock for the whole scan."""
    store = MemoryStore(clock=clock)
    for index in range(100_000):
        store.update(f"big:{index}", lambda current, now: _item("v"))
    store.update("other", lambda current, now: _item("v"))
    finished_reads: list[float] = []
    flushing = threading.Event()
    done = threading.Event()

    def read_meanwhile() -> None:
        flushing.wait(timeout=30)
        while not done.is_set() and len(finished_reads) < 1_000_000:
            started = time.perf_counter()
            store.get("other")
            finished_reads.append(time.perf_counter() - started)

    reader = threading.Thread(target=read_meanwhile)
    reader.start()
    try:
        flushing.set()
        assert store.delete_prefix("big:") == 100_000
        during = len(finished_reads)
    finally:
        done.set()
        reader.join(timeout=30)
    assert during >= 10, f"only {during} reads finished during the flush"
    print(f"{during} reads during the flush; longest {max(finished_reads) * 1000:.2f} ms")


def _item(value: str):
    from memflask.store import Item

    return Item(value)
