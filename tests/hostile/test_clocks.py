"""Expiry against clock steps: a relative ttl runs by the monotonic clock, `expire` by Unix time.

A wall clock steps (an administrator, NTP at boot, a VM resumed): memcached keeps every
expiry on its own process clock, so a `ttl=60` item lives 60 seconds whatever the wall
clock does. An absolute `expire` names a Unix instant, and keeps following the wall
clock. Snapshots save both as Unix instants. On Redis one clock, Redis's own, decides for
every memflask host: two hosts whose clocks disagree by an hour agree on every expiry.
"""

from __future__ import annotations

import time
import uuid

import pytest
from freezegun import freeze_time

from memflask import create_app
from memflask.commands import Expiry
from memflask.store import Clock, Item, MemoryStore, ServerChange, snapshot
from tests.harness.clock import FakeClock

DAY = 24 * 3600
HOUR = 3600


def ttl_of(client, key):
    response = client.get("/ttl", query_string={"key": key})
    return response.get_json()["ttl"] if response.status_code == 200 else None


def get(client, key):
    response = client.get("/get", query_string={"key": key})
    return response.get_data(as_text=True) if response.status_code == 200 else None


# -- the memory store, with the injected clock ---------------------------------------------


def test_a_wall_step_forward_of_a_day_leaves_a_ttl_item_its_seconds(client, clock):
    assert client.get("/set?key=k&value=v&ttl=60").status_code == 204
    clock.step_wall(DAY)
    assert get(client, "k") == "v"
    assert ttl_of(client, "k") == 60
    clock.tick(59)
    assert get(client, "k") == "v"
    clock.tick(1)
    assert get(client, "k") is None


def test_a_wall_step_back_of_an_hour_does_not_lengthen_a_ttl(client, clock):
    assert client.get("/set?key=k&value=v&ttl=60").status_code == 204
    clock.tick(10)
    clock.step_wall(-HOUR)
    assert ttl_of(client, "k") == 50
    clock.tick(50)
    assert get(client, "k") is None


def test_a_get_alone_after_a_step_back_judges_a_ttl_by_the_monotonic_clock(client, clock):
    client.get("/set?key=k&value=v&ttl=60")
    clock.step_wall(-HOUR)
    clock.tick(60)
    assert get(client, "k") is None  # the first request since the step: a /get


def test_an_absolute_expire_follows_the_wall_clock(client, clock):
    now = int(clock())
    assert client.get(f"/set?key=later&value=v&expire={now + 100}").status_code == 204
    assert client.get(f"/set?key=soon&value=v&expire={now + 10}").status_code == 204
    clock.step_wall(-HOUR)
    assert ttl_of(client, "soon") == HOUR + 10
    clock.step_wall(HOUR + 50)
    assert get(client, "soon") is None
    assert ttl_of(client, "later") == 50


def test_writes_that_keep_the_expiry_keep_its_kind(client, clock):
    assert client.get("/set?key=n&value=1&ttl=60").status_code == 204
    assert client.get("/increment?key=n&value=1").status_code == 204
    assert client.get("/append?key=n&value=0").status_code == 204
    clock.step_wall(DAY)
    assert get(client, "n") == "20"
    assert ttl_of(client, "n") == 60


def test_touch_and_gat_with_ttl_run_by_the_monotonic_clock(client, clock):
    client.get("/set?key=t&value=v")
    client.get("/set?key=g&value=v")
    assert client.get("/touch?key=t&ttl=30").status_code == 204
    assert client.get("/gat?key=g&ttl=30").status_code == 200
    clock.step_wall(-DAY)
    assert (ttl_of(client, "t"), ttl_of(client, "g")) == (30, 30)
    clock.tick(30)
    assert (get(client, "t"), get(client, "g")) == (None, None)


def test_stats_and_the_byte_count_stay_exact_over_a_step():
    clock = FakeClock()
    store = MemoryStore(max_bytes=1 << 20, clock=clock)
    fresh = MemoryStore(max_bytes=1 << 20, clock=FakeClock())
    for number in range(50):
        for each in (store, fresh):
            each.update(f"k{number}", _ttl_change(number + 1))
    clock.step_wall(DAY)
    assert store.stats() == fresh.stats()
    clock.tick(25)
    assert store.stats()["keyCount"] == 25
    assert store.stats()["expired"] == 25


def _ttl_change(seconds):
    from memflask.commands import Expiry
    from memflask.store import Item

    return lambda current, now: Item("v", Expiry(ttl=seconds).resolve(now))


def test_a_snapshot_saves_a_ttl_item_with_its_seconds_left(tmp_path):
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    now = clock()
    store.update("relative", _ttl_change(60))
    store.update("absolute", lambda current, now: _item_at(now + 60))
    clock.tick(10)
    clock.step_wall(DAY)
    path = tmp_path / "snapshot.json"
    # The absolute item's instant has passed on the wall clock; the ttl item has 50 s left.
    assert snapshot.save(store, path) == 1
    restored = MemoryStore(clock=FakeClock(clock()))
    assert snapshot.load(restored, path) == 1
    assert restored.peek("relative").expires_at == now + 10 + DAY + 50
    assert restored.peek("absolute") is None


def test_a_snapshot_keeps_absolute_instants_across_a_step(tmp_path):
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    now = clock()
    store.update("absolute", lambda current, now: _item_at(now + 60))
    clock.step_wall(-HOUR)
    path = tmp_path / "snapshot.json"
    assert snapshot.save(store, path) == 1
    restored = MemoryStore(clock=FakeClock(clock()))
    assert snapshot.load(restored, path) == 1
    assert restored.peek("absolute").expires_at == now + 60


def _item_at(expires_at):
    from memflask.store import Item

    return Item("v", expires_at)


def test_freezegun_moves_the_wall_clock_and_time_together():
    # freezegun moves time.time and time.monotonic as one: a move is time passing.
    with freeze_time("2031-05-01 12:00:00") as frozen:
        client = create_app({"APP_ENV": "production"}).test_client()
        client.get("/set?key=k&value=v&ttl=60")
        frozen.tick(59)
        assert ttl_of(client, "k") == 1
        frozen.tick(1)
        assert get(client, "k") is None


def test_the_real_clock_sees_a_wall_step(monkeypatch):
    # The app's real clock, its wall time stepped a day ahead under it.
    client = create_app({"APP_ENV": "production"}).test_client()
    client.get("/set?key=k&value=v&ttl=60")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + DAY)
    assert get(client, "k") == "v"
    assert ttl_of(client, "k") in (59, 60)


# -- Redis: one clock for every memflask host ----------------------------------------------


class HostClock(Clock):
    """A host's real wall clock, `offset` seconds off; Redis's TIME decides expiry."""

    def __init__(self, offset: float):
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def two_hosts(redis_url):
    """Two memflask apps on one Redis namespace, the second host's clock an hour ahead."""
    prefix = f"test-{uuid.uuid4().hex}:"
    apps = [
        create_app(
            {
                "APP_ENV": "production",
                "STORE_URL": redis_url,
                "STORE_PREFIX": prefix,
                "CLOCK": clock,
            }
        )
        for clock in (HostClock(0), HostClock(HOUR))
    ]
    yield [app.test_client() for app in apps]
    apps[0].extensions["memflask"].store.flush()
    for app in apps:
        app.extensions["memflask"].store.close()


def test_hosts_an_hour_apart_agree_on_a_ttl(two_hosts):
    right, ahead = two_hosts
    assert right.get("/set?key=r&value=v&ttl=60").status_code == 204
    assert ahead.get("/set?key=a&value=v&ttl=60").status_code == 204
    for key in ("r", "a"):
        assert get(right, key) == get(ahead, key) == "v"
        assert ttl_of(right, key) in (59, 60)
        assert ttl_of(ahead, key) in (59, 60)


def test_hosts_an_hour_apart_agree_on_an_absolute_expire(two_hosts):
    right, ahead = two_hosts
    # 29 to 30 s left when sent: /ttl answers whole seconds up, so 30 at most, and a
    # loaded machine may take a second or two before the reads.
    assert ahead.get(f"/set?key=k&value=v&expire={int(time.time()) + 30}").status_code == 204
    assert get(right, "k") == get(ahead, "k") == "v"
    assert 27 <= ttl_of(right, "k") <= 30
    assert 27 <= ttl_of(ahead, "k") <= 30


def test_hosts_an_hour_apart_list_the_same_keys(two_hosts):
    right, ahead = two_hosts
    assert right.get(f"/set?key=k&value=v&expire={int(time.time()) + 30}").status_code == 204
    for client in (right, ahead):
        assert listed_keys(client) == ["k"]


def listed_keys(client, pages: int = 1000) -> list[str]:
    """Every key of one whole scan: a page may be empty before the end, as Redis's SCAN."""
    keys: list[str] = []
    cursor = ""
    for _ in range(pages):
        answer = client.get("/keys", query_string={"cursor": cursor, "limit": 10})
        assert answer.status_code == 200
        keys += answer.json["keys"]
        cursor = answer.json["cursor"]
        if not cursor:
            return keys
    raise AssertionError(f"the scan did not end in {pages} pages")


def test_hosts_an_hour_apart_see_an_item_expire_together(two_hosts):
    right, ahead = two_hosts
    assert ahead.get("/set?key=k&value=v&ttl=3").status_code == 204
    assert get(right, "k") == "v"
    time.sleep(3.5)
    assert get(right, "k") is None
    assert get(ahead, "k") is None


def test_hosts_an_hour_apart_get_every_expiry_on_their_own_clock(two_hosts, monkeypatch):
    """A read, a script write's answer and a plugin verb's update (WATCH/MULTI) tell an
    expiry on the host's clock, and take versions from Redis's, never the host's."""
    stores = [client.application.extensions["memflask"].store for client in two_hosts]
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + HOUR)  # both hosts' clocks ahead
    for number, store in enumerate(stores):
        plugin_item = store.update(f"plugin{number}", lambda current, now: Item("v", now + 60))
        written = store.write(
            f"script{number}",
            lambda current, now: Item("v", Expiry(ttl=60).resolve(now)),
            ServerChange("set", value="v", expiry=Expiry(ttl=60)),
        )
        assert plugin_item.version < (real_time() + 60) * 1_000_000  # Redis's TIME
        for key, item in (("plugin", plugin_item), ("script", written)):
            assert 57 <= item.expires_at - store.clock() <= 60, key
            for client in two_hosts:  # read back through either host
                assert 57 <= ttl_of(client, f"{key}{number}") <= 60, key


def test_a_host_clock_stepped_after_the_write_does_not_move_the_expiry(redis_url):
    clock = FakeClock()
    app = create_app(
        {
            "APP_ENV": "production",
            "STORE_URL": redis_url,
            "STORE_PREFIX": f"test-{uuid.uuid4().hex}:",
            "CLOCK": clock,
        }
    )
    client = app.test_client()
    try:
        assert client.get("/set?key=k&value=v&ttl=60").status_code == 204
        clock.step_wall(DAY)
        assert get(client, "k") == "v"
        assert ttl_of(client, "k") == 60
        clock.tick(60)
        assert get(client, "k") is None
    finally:
        app.extensions["memflask"].store.flush()
        app.extensions["memflask"].store.close()
