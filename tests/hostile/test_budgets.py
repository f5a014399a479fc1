"""Hostile clients against the answer and work budgets, and forged /keys cursors (issue 20,
items 3, 7 and 11): a small request must not build a huge answer, burn seconds of CPU
scanning, or end, read or crash another client's scan."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time

import pytest

from memflask.store import Item, MemoryStore
from tests.harness.servers import ROOT, free_port, wait_until_serving

MIB = 1024 * 1024
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["memory", "redis"], indirect=True)


def post_batch(client, commands: list) -> object:
    return client.post("/batch", json=commands)


def fill(client, keys: list[str], value: str = "v") -> None:
    # 200 a batch: the results of 1,000 would not fit in these tests' 64 KiB answers.
    for start in range(0, len(keys), 200):
        commands = [
            {"verb": "set", "key": key, "value": value} for key in keys[start : start + 200]
        ]
        assert post_batch(client, commands).status_code == 200


# -- item 3: answers ------------------------------------------------------------------------


def memory_of(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) for name in ("VmHWM", "VmRSS")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_a_small_batch_of_gets_of_a_large_value_keeps_a_server_small():
    """250 gets of one 1 MiB value (an 8 KB body): the answer stays within MAX_ANSWER_BYTES
    and so does the server's peak RSS (today's main: a 262 MB answer, peak RSS ~0.8 GB)."""
    port = free_port()
    environment = {**os.environ, "PORT": str(port), "APP_ENV": "production"}
    server = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env=environment, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_serving(port, server)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = json.dumps({"key": "big", "value": "v" * MIB})
        connection.request("POST", "/set", body, {"Content-Type": "application/json"})
        assert connection.getresponse().read() == b""
        before = memory_of(server.pid)
        batch = json.dumps([{"verb": "get", "key": "big"}] * 250)
        connection.request("POST", "/batch", batch, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        peak = memory_of(server.pid)["VmHWM"]
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert response.status == 200
    assert len(answer) <= 16 * MIB
    results = json.loads(answer)
    assert len(results) == 250
    kept = [result for result in results if result["status"] == 200]
    assert 10 <= len(kept) <= 15 and all(result["value"] == "v" * MIB for result in kept)
    assert results[len(kept) :] == [results[-1]] * (250 - len(kept))
    assert results[-1]["status"] == 413 and results[-1]["error"] == "answer_too_large"
    growth_mib = (peak - before["VmHWM"]) / 1024
    print(
        f"peak RSS {peak / 1024:.0f} MiB, +{growth_mib:.0f} MiB for a {len(answer):,}-byte answer"
    )
    assert growth_mib < 256, f"peak RSS grew {growth_mib:.0f} MiB for one request"


@pytest.fixture
def app_config() -> dict:
    return {"MAX_ANSWER_BYTES": 64 * 1024}


@BOTH_BACKENDS
def test_a_batch_answer_never_passes_max_answer_bytes_even_escaped(client):
    """Control characters are 6 bytes each in JSON: counted as sent, before being kept."""
    value = "\x01" * 4000  # 24,002 bytes of JSON
    assert client.post("/set", data={"key": "k", "value": value}).status_code == 204
    answer = post_batch(client, [{"verb": "get", "key": "k"}] * 20)
    assert answer.status_code == 200
    assert len(answer.data) <= 64 * 1024
    statuses = [result["status"] for result in answer.json]
    assert statuses == [200, 200] + [413] * 18  # 4,000 plain characters: all 20 would fit
    assert answer.json[0]["value"] == value
    assert answer.json[2]["error"] == "answer_too_large"


@BOTH_BACKENDS
def test_a_batch_runs_every_command_even_those_whose_result_is_left_out(client):
    assert client.post("/set", data={"key": "k", "value": "x" * 40_000}).status_code == 204
    commands = [{"verb": "get", "key": "k"}] * 3 + [{"verb": "set", "key": "late", "value": "1"}]
    answer = post_batch(client, [*commands, {"verb": "get", "key": "late"}])
    assert [result["status"] for result in answer.json] == [200, 413, 413, 204, 200]
    assert client.get("/get?key=late").data == b"1"


@BOTH_BACKENDS
def test_a_batch_too_long_for_its_cut_results_is_refused_whole(client):
    answer = post_batch(client, [{"verb": "set", "key": "k", "value": "v"}] * 1000)
    assert answer.status_code == 413
    assert answer.json["error"] == "answer_too_large"
    assert client.get("/get?key=k").status_code == 404  # nothing ran


@BOTH_BACKENDS
def test_an_mget_past_max_answer_bytes_is_refused(client):
    fill(client, [f"k{number}" for number in range(20)], value="y" * 10_000)
    answer = client.get("/mget?" + "&".join(f"key=k{number}" for number in range(20)))
    assert answer.status_code == 413
    assert answer.json["error"] == "answer_too_large"
    small = client.get("/mget?key=k1&key=k2&key=absent")
    assert small.status_code == 200 and sorted(small.json) == ["k1", "k2"]


# -- item 7: scans -------------------------------------------------------------------------


@BOTH_BACKENDS
@pytest.mark.parametrize("app_config", [{}], ids=["default-limits"])  # pages of 1,000 keys fit
@pytest.mark.parametrize(
    "scan",
    [{"verb": "flush", "prefix": "nomatch:"}, {"verb": "keys", "limit": "1000"}],
    ids=["prefix-flush", "keys"],
)
def test_a_batch_of_many_scans_is_refused_before_running(client, scan):
    fill(client, [f"key:{number}" for number in range(3000)])
    started = time.monotonic()
    answer = post_batch(client, [{"verb": "set", "key": "first", "value": "1"}, *[scan] * 999])
    took = time.monotonic() - started
    assert answer.status_code == 413, answer.json
    assert answer.json["error"] == "scan_budget_exceeded"
    assert client.get("/get?key=first").status_code == 404  # nothing ran
    assert took < 10, f"refusing took {took:.1f} s"
    assert post_batch(client, [scan] * 3).status_code == 200  # a few scans are fine


def test_a_huge_batch_of_key_listings_is_refused_in_time_by_a_real_server(app, live_server):
    """Today's main spends ~1,000 x 15 ms copying and filtering 100k keys: 15 s and more."""
    store = app.extensions["memflask"].store
    for number in range(100_000):
        store.update(f"key:{number}", lambda current, now: Item("v"))
    commands = json.dumps([{"verb": "keys", "prefix": "nomatch:"}] * 1000)
    connection = live_server.connection(timeout=10)
    try:
        connection.request("POST", "/batch", commands, {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413 and body["error"] == "scan_budget_exceeded"
    status, _, _ = live_server.request("GET", "/healthz")
    assert status == 200


def test_a_page_examines_about_its_limit_not_the_whole_store(clock):
    """Each page is bounded by its limit: the store's key list is copied, never filtered
    whole (today's main filters every key at a scan's start, under the GIL)."""
    store = MemoryStore(clock=clock)
    for number in range(50_000):
        store.update(f"{'even' if number % 2 == 0 else 'odd'}:{number}", lambda c, n: Item("v"))
    examined: list[int] = []

    class CountingKey(str):
        def startswith(self, prefix, *args):  # type: ignore[override]
            examined.append(1)
            return str.startswith(self, prefix, *args)

    with store._lock:  # the same keys, each counting the prefix checks made on it
        store._items = type(store._items)((CountingKey(k), v) for k, v in store._items.items())
    keys, cursor = store.scan("odd:", "", 10)
    assert len(keys) == 10 and cursor
    assert len(examined) <= 10 * 10


# -- item 11: cursors ------------------------------------------------------------------------


@BOTH_BACKENDS
@pytest.mark.parametrize(
    "cursor", ["1" * 4301, "1" * 4301 + "-0"], ids=["redis-form", "memory-form"]
)
def test_a_4301_digit_cursor_is_a_clear_400_on_a_real_server(live_server, cursor):
    """Python's int() refuses over 4,300 digits: today's main answered 500."""
    status, _, body = live_server.request("GET", "/keys?cursor=" + cursor)
    assert status == 400
    assert json.loads(body)["error"] == "invalid_cursor"


def scan_page(client, prefix: str, cursor: str = "", limit: int = 2) -> tuple[int, dict]:
    answer = client.get("/keys", query_string={"prefix": prefix, "cursor": cursor, "limit": limit})
    return answer.status_code, answer.json


@BOTH_BACKENDS
def test_a_cursor_reused_with_another_prefix_is_refused(client):
    fill(client, [f"a:{number}" for number in range(40)] + [f"b:{number}" for number in range(40)])
    status, page = scan_page(client, "a:")
    assert status == 200 and page["cursor"]
    status, refused = scan_page(client, "b:", page["cursor"])
    assert (status, refused["error"]) == (400, "invalid_cursor")
    status, more = scan_page(client, "a:", page["cursor"])  # still good for its own prefix
    assert status == 200 and all(key.startswith("a:") for key in more["keys"])


@BOTH_BACKENDS
def test_a_forged_cursor_can_neither_end_nor_read_another_clients_scan(client):
    wanted = [f"a:{number}" for number in range(30)]
    fill(client, wanted)
    status, first = scan_page(client, "a:")
    listed, cursor = list(first["keys"]), first["cursor"]
    assert status == 200 and cursor
    position, _, tag = cursor.rpartition(".")
    # A forger knows the format but not the seal: every made-up cursor is refused.
    made_up = ["1-999999", "1-0", "999999", "\u00e9.\u00e9", "-1.", ".", "0"]
    for forged in [*made_up, f"{position}.{tag[:-1]}A", f"{position}9.{tag}"]:
        if forged != cursor:
            assert scan_page(client, "a:", forged)[0] == 400, forged
    for _ in range(100):  # the real scan goes on to its end (pages of Redis's whole database)
        status, page = scan_page(client, "a:", cursor, limit=1000)
        assert status == 200
        listed.extend(page["keys"])
        cursor = page["cursor"]
        if not cursor:
            break
    assert sorted(set(listed)) == sorted(wanted)


# -- Redis: one round trip per /mget, stats in the work budget ----------------------------

# The read script runs on a cluster too (one pipeline per node, a call on each).
REDIS_BACKENDS = pytest.mark.parametrize("backend", ["redis", "redis-cluster"], indirect=True)


def count_round_trips(monkeypatch, client) -> list[str]:
    """The Redis store's script round trips (single calls and pipelines), by script name."""
    store = client.application.extensions["memflask"].store
    trips: list[str] = []
    single, pipelined = store.scripts.call, store._call_many

    def call(name, *args):
        trips.append(name)
        return single(name, *args)

    def call_many(name, *args):
        trips.append(name)
        return pipelined(name, *args)

    monkeypatch.setattr(store.scripts, "call", call)
    monkeypatch.setattr(store, "_call_many", call_many)
    return trips


@REDIS_BACKENDS
def test_a_redis_mget_of_many_keys_is_one_round_trip(client, monkeypatch):
    keys = [f"k{number}" for number in range(300)]
    fill(client, keys[::2])
    trips = count_round_trips(monkeypatch, client)
    answer = client.get("/mget", query_string=[("key", key) for key in keys])
    assert answer.status_code == 200
    assert answer.json == {key: "v" for key in keys[::2]}
    assert trips == ["read"]


@REDIS_BACKENDS
def test_a_redis_mget_past_the_answer_is_refused_in_one_round_trip(client, monkeypatch):
    keys = [f"k{number}" for number in range(20)]
    fill(client, keys, value="y" * 10_000)
    trips = count_round_trips(monkeypatch, client)
    answer = client.get("/mget", query_string=[("key", key) for key in keys])
    assert answer.status_code == 413 and answer.json["error"] == "answer_too_large"
    assert trips == ["read"]


@REDIS_BACKENDS
def test_a_redis_mget_with_one_large_hit_among_many_answers_them_all(client):
    keys = [f"k{number}" for number in range(100)]
    fill(client, keys)
    assert client.post("/set", data={"key": "large", "value": "z" * 40_000}).status_code == 204
    answer = client.get("/mget", query_string=[("key", key) for key in [*keys, "large"]])
    assert answer.status_code == 200
    assert answer.json == {**{key: "v" for key in keys}, "large": "z" * 40_000}


@REDIS_BACKENDS
def test_a_redis_mget_whose_escaped_hits_pass_the_answer_is_refused(client):
    """Under the room in bytes, past it in JSON: \\x01 is 6 bytes escaped."""
    for key in ("a", "b", "c"):
        assert client.post("/set", data={"key": key, "value": "\x01" * 4000}).status_code == 204
    assert client.get("/mget?key=a&key=b").status_code == 200
    answer = client.get("/mget?key=a&key=b&key=c")
    assert answer.status_code == 413 and answer.json["error"] == "answer_too_large"


@REDIS_BACKENDS
def test_a_redis_mget_of_one_key_asked_many_times_reads_its_value_once(client, monkeypatch):
    """1,000 repeats of a 1 MiB key had Redis build a 1 GB reply (counted once against the
    answer's room, sent once per repeat), stalling it past the store's timeout: every
    request got 503 for a second."""
    assert client.post("/set", data={"key": "big", "value": "x" * 40_000}).status_code == 204
    received = value_bytes_received(monkeypatch, client)
    answer = client.get("/mget?" + "&".join(["key=big"] * 1000))
    assert answer.status_code == 200
    assert answer.json == {"big": "x" * 40_000}
    assert sum(received) < 2 * 40_000, received  # were 1,000 values: 40 MB


def value_bytes_received(monkeypatch, client) -> list[int]:
    """The bytes of every answer the Redis store's scripts send back, one entry a trip."""
    store = client.application.extensions["memflask"].store
    received: list[int] = []
    single, pipelined = store.scripts.call, store._call_many

    def size(answer) -> int:
        if isinstance(answer, bytes):
            return len(answer)
        if isinstance(answer, (list, tuple)):
            return sum(size(part) for part in answer)
        return 0

    def call(name, *args):
        answer = single(name, *args)
        received.append(size(answer))
        return answer

    def call_many(name, *args):
        answers = pipelined(name, *args)
        received.append(size(answers))
        return answers

    monkeypatch.setattr(store.scripts, "call", call)
    monkeypatch.setattr(store, "_call_many", call_many)
    return received


@REDIS_BACKENDS
def test_a_redis_batch_of_gets_reads_no_value_it_cannot_send(client, monkeypatch):
    """Each get in a /batch has Redis send its value only if it may fit the room left:
    20 gets of a 40 KB value in a 64 KiB answer bring one value from Redis, not 20."""
    assert client.post("/set", data={"key": "k", "value": "x" * 40_000}).status_code == 204
    hits_before = client.get("/stats").json["hits"]
    received = value_bytes_received(monkeypatch, client)
    answer = post_batch(client, [{"verb": "get", "key": "k"}] * 20)
    assert [result["status"] for result in answer.json] == [200] + [413] * 19
    assert answer.json[0]["value"] == "x" * 40_000
    assert answer.json[1]["error"] == "answer_too_large"
    assert sum(received) < 2 * 40_000, received  # were 20 values: 800,000 bytes
    monkeypatch.undo()
    assert client.get("/stats").json["hits"] - hits_before == 20  # each read, as a get
    # A small value still comes back in each entry, and a miss is a 404 as ever.
    client.post("/set", data={"key": "small", "value": "s"})
    answer = post_batch(
        client, [{"verb": "get", "key": "small"}] * 2 + [{"verb": "get", "key": "no"}]
    )
    assert [result.get("value") for result in answer.json[:2]] == ["s", "s"]
    assert answer.json[2]["status"] == 404


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
@pytest.mark.parametrize("app_config", [{}], ids=["default-limits"])
def test_a_redis_batch_of_many_stats_is_refused_before_running(client, monkeypatch):
    trips = count_round_trips(monkeypatch, client)
    answer = post_batch(
        client, [{"verb": "set", "key": "first", "value": "1"}] + [{"verb": "stats"}] * 999
    )
    assert answer.status_code == 413, answer.json
    assert answer.json["error"] == "scan_budget_exceeded"
    assert trips == []  # nothing ran
    assert client.get("/get?key=first").status_code == 404
    few = post_batch(client, [{"verb": "stats"}] * 3)
    assert few.status_code == 200
    assert [result["status"] for result in few.json] == [200] * 3
