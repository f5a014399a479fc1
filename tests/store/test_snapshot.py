"""Warm restarts: snapshots saved atomically, loaded with expiry kept, corrupt ones survived.

A snapshot file is input like any other: whatever it holds, start-up goes on (bad items
skipped and counted, an unreadable file moved aside) and loading holds about one item at a
time, not the file.
"""

from __future__ import annotations

import http.client
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest

from memflask import config, create_app
from memflask.store import DELETE, Item, MemoryStore, snapshot
from memflask.store.snapshot import FORMAT, load, save
from tests.harness.servers import ROOT, free_port, wait_until_serving


def fill(store, clock):
    store.update("old", lambda current, now: Item("1"))
    store.update("expiring", lambda current, now: Item("2", clock.now + 10))
    store.update("new", lambda current, now: Item("ünïcode \u2603", None))


def test_save_then_load_keeps_values_expiry_and_recency(tmp_path, clock):
    source = MemoryStore(clock=clock)
    fill(source, clock)
    source.get("old")  # now the most recent
    assert save(source, tmp_path / "cache.snapshot") == 3

    target = MemoryStore(max_keys=3, clock=clock)
    assert load(target, tmp_path / "cache.snapshot") == 3
    assert target.export() == source.export()
    assert target.peek("expiring").expires_at == clock.now + 10
    target.update("fourth", lambda current, now: Item("4"))
    assert target.peek("expiring") is None  # the least recent was evicted, as in the source


def test_expired_items_are_dropped_at_load(tmp_path, clock):
    source = MemoryStore(clock=clock)
    fill(source, clock)
    save(source, tmp_path / "s")
    clock.tick(10)
    target = MemoryStore(clock=clock)
    assert load(target, tmp_path / "s") == 2
    assert target.peek("expiring") is None


def test_the_file_is_versioned_json_and_no_temporary_file_is_left(tmp_path, clock):
    store = MemoryStore(clock=clock)
    fill(store, clock)
    save(store, tmp_path / "s")
    save(store, tmp_path / "s")
    text = (tmp_path / "s").read_text(encoding="utf-8")
    document = json.loads(text)
    assert (document["format"], document["version"]) == (FORMAT, 2)
    assert [item[0] for item in document["items"]] == ["old", "expiring", "new"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s"]
    # One item a line, so a loader can read it line by line: header, items, end.
    lines = text.splitlines()
    assert lines[0].endswith('"items":[') and lines[-1] == "]}"
    assert [json.loads(line.rstrip(","))[0] for line in lines[1:-1]] == ["old", "expiring", "new"]


def test_a_missing_snapshot_is_an_empty_start(tmp_path, clock):
    assert load(MemoryStore(clock=clock), tmp_path / "none") == 0


# Files that cannot be read as a snapshot, by what is wrong with them.
UNREADABLE = {
    "pickle": b"\x80\x04pickled?",
    "not JSON": b"{not json",
    "another format": b'{"format": "something-else", "version": 1, "items": []}',
    "an unknown version": b'{"format": "memflask-snapshot", "version": 99, "items": []}',
    "items not a list": b'{"format": "memflask-snapshot", "version": 1, "items": {"k": "v"}}',
    "not an object": b"[]",
    # Nested past the interpreter's recursion limit: json.loads raises RecursionError.
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "items nested 100,000 deep": b'{"format": "memflask-snapshot", "version": 1, "items": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    # Version 2: a header line, then one item a line, then the end of the list.
    "v2 header, unknown version": (
        b'{"format":"memflask-snapshot","version":99,"saved_at":0,"items":[\n]}\n'
    ),
    "v2 header, another format": (
        b'{"format":"something-else","version":2,"saved_at":0,"items":[\n]}\n'
    ),
    "v2, cut short": (
        b'{"format":"memflask-snapshot","version":2,"saved_at":0,"items":[\n["k","v",null],\n'
    ),
}


@pytest.mark.parametrize("content", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_corrupt_snapshot_is_moved_aside_and_the_app_starts_empty(tmp_path, content, caplog):
    (tmp_path / "cache.snapshot").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        app = create_app(
            {
                "APP_ENV": "production",
                "SNAPSHOT_PATH": str(tmp_path / "cache.snapshot"),
                "SNAPSHOT_INTERVAL": 0,
            }
        )
    assert app.test_client().get("/stats").json["keyCount"] == 0
    moved = [path.name for path in tmp_path.iterdir()]
    assert len(moved) == 1 and moved[0].startswith("cache.snapshot.corrupt-")
    assert (tmp_path / moved[0]).read_bytes() == content
    assert "unreadable" in caplog.text


def test_relative_path_lands_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path))
    app = create_app(
        {"APP_ENV": "production", "SNAPSHOT_PATH": "warm.json", "SNAPSHOT_INTERVAL": 0}
    )
    app.test_client().get("/set?key=k&value=v")
    app.extensions["memflask"].lifecycle.shutdown()
    assert json.loads((tmp_path / "warm.json").read_text())["items"][0][:2] == ["k", "v"]


def get(port: int, key: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", f"/get?key={key}")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_kill_term_and_restart_keeps_the_data(tmp_path):
    """A real server, a SIGTERM, and a new process on the same snapshot."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "MEMFLASK_SNAPSHOT_PATH": str(tmp_path / "cache.snapshot"),
        "MEMFLASK_SNAPSHOT_INTERVAL": "0",
    }
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env={**environment, "PORT": str(port)}
    )
    try:
        wait_until_serving(port, first)
        for number in range(50):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", f"/set?key=k{number}&value=v{number}&ttl=3600")
            assert connection.getresponse().status == 204
            connection.close()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()

    port = free_port()
    second = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env={**environment, "PORT": str(port)}
    )
    try:
        wait_until_serving(port, second)
        assert all(get(port, f"k{number}") == (200, f"v{number}".encode()) for number in range(50))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/ttl?key=k0")
        assert 3500 < json.loads(connection.getresponse().read())["ttl"] <= 3600
        connection.close()
    finally:
        second.terminate()
        second.wait(timeout=30)


# -- hostile or damaged snapshots -------------------------------------------------------------

SMALL_LIMITS = {"max_key_bytes": 16, "max_value_bytes": 4096}
HEADER_2 = b'{"format":"memflask-snapshot","version":2,"saved_at":0,"items":[\n'


def write_version_1(path, items: list[bytes]) -> None:
    """The format memflask wrote before version 2: the whole document on one line."""
    path.write_bytes(
        b'{"format":"memflask-snapshot","version":1,"saved_at":0,"items":['
        + b",".join(items)
        + b"]}"
    )


def write_version_2(path, items: list[bytes]) -> None:
    path.write_bytes(HEADER_2 + b",\n".join(items) + b"\n]}\n")


# Each is one item's JSON text, as a file may hold it, and why it must not be restored.
BAD_ITEMS = {
    "lone surrogate in the value": rb'["bad", "\ud800", null]',
    "lone surrogate in the key": rb'["\udfff", "v", null]',
    "NaN expiry": b'["bad", "v", NaN]',
    "Infinity expiry": b'["bad", "v", Infinity]',
    "-Infinity expiry": b'["bad", "v", -Infinity]',
    "1e400 expiry (reads as inf)": b'["bad", "v", 1e400]',
    "10**400 expiry (float() overflows)": b'["bad", "v", 1' + b"0" * 400 + b"]",
    "boolean expiry": b'["bad", "v", true]',
    "text expiry": b'["bad", "v", "tomorrow"]',
    "empty key": b'["", "v", null]',
    "key over MAX_KEY_BYTES": b'["' + b"k" * 17 + b'", "v", null]',
    "key over MAX_KEY_BYTES in UTF-8 bytes": '["ééééééééé", "v", null]'.encode(),
    "value over MAX_VALUE_BYTES": b'["bad", "' + b"v" * 4097 + b'", null]',
    "number value": b'["bad", 5, null]',
    "number key": b'[5, "v", null]',
    "two fields": b'["bad", "v"]',
    "four fields": b'["bad", "v", null, null]',
    "an object": b'{"bad": "v"}',
    "a string": b'"bad"',
}


@pytest.mark.parametrize("write", [write_version_1, write_version_2], ids=["v1", "v2"])
@pytest.mark.parametrize("bad", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_a_bad_item_is_skipped_counted_and_the_others_restored(tmp_path, clock, caplog, write, bad):
    path = tmp_path / "s"
    write(path, [b'["before", "1", null]', bad, b'["after", "2", null]'])
    store = MemoryStore(clock=clock)
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        assert load(store, path, **SMALL_LIMITS) == 2
    assert [key for key, _, _ in store.export()] == ["before", "after"]
    assert "skipped 1 bad item" in caplog.text
    assert path.read_bytes().startswith(b"{")  # kept in place: only its bad item was dropped


V2_ONLY_BAD_LINES = {
    "not JSON": b"[not json",
    "invalid UTF-8": b'["bad", "\xff\xfe", null]',
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "line longer than any item within the limits": b'["bad", "' + b"\\u0000" * 5000 + b'", null]',
}


@pytest.mark.parametrize("bad", V2_ONLY_BAD_LINES.values(), ids=V2_ONLY_BAD_LINES.keys())
def test_a_bad_line_in_a_version_2_file_is_a_skipped_item(tmp_path, clock, caplog, bad):
    path = tmp_path / "s"
    write_version_2(path, [b'["before", "1", null]', bad, b'["after", "2", null]'])
    store = MemoryStore(clock=clock)
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        assert load(store, path, **SMALL_LIMITS) == 2
    assert [key for key, _, _ in store.export()] == ["before", "after"]
    assert "skipped 1 bad item" in caplog.text


def test_the_settings_defaults_are_the_loaders_defaults():
    loader = inspect.signature(load).parameters
    assert loader["max_key_bytes"].default == config.DEFAULTS["MAX_KEY_BYTES"]
    assert loader["max_value_bytes"].default == config.DEFAULTS["MAX_VALUE_BYTES"]


def test_the_issues_snapshot_neither_poisons_the_app_nor_its_stop(tmp_path, caplog):
    """The reproduction: a lone surrogate, infinite and NaN expiries in a version 1 file."""
    path = tmp_path / "cache.snapshot"
    later = str(time.time() + 3600).encode()
    write_version_1(
        path,
        [
            rb'["surrogate", "\ud800", null]',
            b'["infinite", "v", Infinity]',
            b'["huge", "v", 1' + b"0" * 400 + b"]",
            b'["nan", "v", NaN]',
            b'["good", "kept", ' + later + b"]",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        app = create_app(
            {"APP_ENV": "production", "SNAPSHOT_PATH": str(path), "SNAPSHOT_INTERVAL": 0}
        )
    client = app.test_client()
    assert client.get("/get?key=good").data == b"kept"
    for key in ("surrogate", "infinite", "huge", "nan"):
        assert client.get(f"/get?key={key}").status_code == 404
        assert client.get(f"/ttl?key={key}").status_code == 404
    assert "skipped 4 bad items" in caplog.text
    app.extensions["memflask"].lifecycle.shutdown()  # the last save: must not raise
    assert [item[0] for item in json.loads(path.read_text())["items"]] == ["good"]


def test_expiry_goes_on_after_a_snapshot_with_a_nan_expiry(tmp_path, clock):
    """A NaN at the top of the expiry heap compared false forever: nothing expired again."""
    path = tmp_path / "s"
    soon = str(clock.now + 1).encode()
    write_version_1(path, [b'["nan", "v", NaN]', b'["soon", "v", ' + soon + b"]"])
    store = MemoryStore(clock=clock)
    load(store, path)
    clock.tick(2)
    assert store.stats()["keyCount"] == 0


def test_a_value_over_the_cap_is_skipped_without_holding_the_file(tmp_path, clock):
    """Streaming: a 4 MiB value under a 4 KiB cap is never held whole, nor is the file."""
    path = tmp_path / "s"
    huge_value = b"v" * (4 * 1024 * 1024)
    write_version_2(path, [b'["before", "1", null]', b'["huge", "' + huge_value + b'", null]'])
    del huge_value
    file_size = path.stat().st_size
    store = MemoryStore(clock=clock)
    tracemalloc.start()
    try:
        restored = load(store, path, **SMALL_LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert restored == 1 and store.peek("huge") is None
    assert peak < file_size / 4, f"peak {peak} bytes while loading a {file_size} byte file"


def test_many_items_load_one_at_a_time(tmp_path, clock):
    """The loader's memory follows the store (here: 10 keys), not the file (20,000 items)."""
    path = tmp_path / "s"
    write_version_2(path, [f'["k{n}", "{"v" * 200}", null]'.encode() for n in range(20_000)])
    store = MemoryStore(max_keys=10, clock=clock)
    tracemalloc.start()
    try:
        load(store, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [key for key, _, _ in store.export()] == [f"k{n}" for n in range(19_990, 20_000)]
    assert peak < path.stat().st_size / 8, f"peak {peak} bytes for {path.stat().st_size}"


def test_a_version_1_file_over_the_cap_is_moved_aside_unread(tmp_path, clock, caplog):
    path = tmp_path / "cache.snapshot"
    write_version_1(path, [b'["k", "' + b"v" * (2 * 1024 * 1024) + b'", null]'])
    store = MemoryStore(clock=clock)
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
            assert load(store, path, max_version_1_bytes=1024 * 1024) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert "version 1" in caplog.text and "1048576" in caplog.text
    assert [entry.name.startswith("cache.snapshot.corrupt-") for entry in tmp_path.iterdir()] == [
        True
    ]


def test_a_version_1_file_still_loads(tmp_path, clock):
    path = tmp_path / "s"
    later = str(clock.now + 60).encode()
    write_version_1(path, [b'["a", "1", null]', '["b", "ünï", '.encode() + later + b"]"])
    store = MemoryStore(clock=clock)
    assert load(store, path) == 2
    assert store.export() == [("a", "1", None), ("b", "ünï", clock.now + 60)]


def test_a_truncated_version_2_file_is_moved_aside_and_nothing_kept(tmp_path, clock, caplog):
    path = tmp_path / "cache.snapshot"
    write_version_2(path, [b'["a", "1", null]', b'["b", "2", null]'])
    path.write_bytes(path.read_bytes()[: -len(b"\n]}\n")])  # a save cut short
    store = MemoryStore(clock=clock)
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        assert load(store, path) == 0
    assert store.export() == []
    assert "unreadable" in caplog.text
    assert [entry.name.startswith("cache.snapshot.corrupt-") for entry in tmp_path.iterdir()] == [
        True
    ]


def test_save_skips_items_that_cannot_be_written_and_keeps_the_rest(tmp_path, clock, caplog):
    store = MemoryStore(clock=clock)
    store.update("good", lambda current, now: Item("v"))
    store.update("surrogate", lambda current, now: Item("\ud800"))
    store.update("infinite", lambda current, now: Item("v", float("inf")))
    with caplog.at_level(logging.WARNING, logger="memflask.snapshot"):
        assert save(store, tmp_path / "s") == 1
    assert json.loads((tmp_path / "s").read_text())["items"] == [["good", "v", None]]
    assert "2 items could not be saved (expiry not finite: 1, not UTF-8: 1)" in caplog.text


def test_temporary_files_of_interrupted_saves_are_removed_at_load(tmp_path, clock):
    path = tmp_path / "cache.snapshot"
    save(MemoryStore(clock=clock), path)
    stale = [tmp_path / ".cache.snapshot.ab_c1234", tmp_path / ".cache.snapshot.zzzzzzzz"]
    kept = [
        tmp_path / "cache.snapshot.corrupt-1700000000",  # for the operator to look at
        tmp_path / ".cache.snapshot.notes.txt",  # not the temporary files' pattern
        tmp_path / ".other.snapshot.ab_c1234",  # another snapshot's
    ]
    for file in stale + kept:
        file.write_bytes(b'{"format":"memflask-snapshot","vers')
    load(MemoryStore(clock=clock), path)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == sorted(
        file.name for file in [path, *kept]
    )


def test_temporary_files_are_removed_even_without_a_snapshot(tmp_path, clock):
    (tmp_path / ".cache.snapshot.k1l2m3n4").write_bytes(b"{")
    assert load(MemoryStore(clock=clock), tmp_path / "cache.snapshot") == 0
    assert list(tmp_path.iterdir()) == []


def test_a_poisoned_snapshot_then_sigterm_exits_0_and_keeps_the_good_items(tmp_path):
    """A real server on the issue's file: /get answers, SIGTERM saves and exits 0."""
    path = tmp_path / "cache.snapshot"
    write_version_1(path, [rb'["surrogate", "\ud800", null]', b'["good", "kept", null]'])
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "MEMFLASK_SNAPSHOT_PATH": str(path),
        "MEMFLASK_SNAPSHOT_INTERVAL": "0",
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env={**environment, "PORT": str(port)}
    )
    try:
        wait_until_serving(port, server)
        assert get(port, "good") == (200, b"kept")
        assert get(port, "surrogate")[0] == 404
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    assert json.loads(path.read_text())["items"] == [["good", "kept", None]]


def test_a_file_moved_aside_never_replaces_an_earlier_one(tmp_path, clock, monkeypatch):
    monkeypatch.setattr(snapshot.time, "time", lambda: 1_700_000_000.5)
    path = tmp_path / "cache.snapshot"
    for content in (b"first", b"second"):
        path.write_bytes(content)
        load(MemoryStore(clock=clock), path)
    assert (tmp_path / "cache.snapshot.corrupt-1700000000").read_bytes() == b"first"
    assert (tmp_path / "cache.snapshot.corrupt-1700000000-2").read_bytes() == b"second"


# -- saving only what changed -------------------------------------------------------------------


def test_the_change_count_moves_on_writes_deletes_expiries_evictions_and_flushes(clock):
    store = MemoryStore(max_keys=2, clock=clock)
    seen = [store.changes]

    def moved() -> bool:
        seen.append(store.changes)
        return seen[-1] != seen[-2]

    store.update("a", lambda current, now: Item("1"))
    assert moved()  # a write
    store.get("a"), store.get("absent"), store.peek("a"), store.stats(), store.export()
    store.update("absent", lambda current, now: DELETE)
    store.update("a", lambda current, now: None)  # a change that changes nothing
    assert not moved()  # reads, misses and no-ops
    store.update("a", lambda current, now: DELETE)
    assert moved()  # a delete
    store.update("b", lambda current, now: Item("2", clock.now + 5))
    assert moved()
    clock.tick(10)
    assert not moved()  # expired, not yet reclaimed: a snapshot leaves it out anyway
    assert store.stats()["expired"] == 1
    assert moved()  # reclaimed
    for key in "cde":
        store.update(key, lambda current, now: Item("3"))
    assert store.stats()["evictions"] == 1 and moved()
    store.flush()
    assert moved()
