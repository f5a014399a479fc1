"""Warm restarts: snapshots saved atomically, loaded with expiry kept, corrupt ones survived."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from memflask import create_app, snapshot
from memflask.lifecycle import Lifecycle
from memflask.snapshot import FORMAT, PeriodicSaver, load, save
from memflask.store import Item, MemoryStore

from .conftest import ROOT, free_port, wait_until_serving


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
    document = json.loads((tmp_path / "s").read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == (FORMAT, 1)
    assert [item[0] for item in document["items"]] == ["old", "expiring", "new"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s"]


def test_a_missing_snapshot_is_an_empty_start(tmp_path, clock):
    assert load(MemoryStore(clock=clock), tmp_path / "none") == 0


@pytest.mark.parametrize(
    "content",
    [
        b"\x80\x04pickled?",
        b"{not json",
        b'{"format": "something-else", "version": 1, "items": []}',
        b'{"format": "memflask-snapshot", "version": 99, "items": []}',
        b'{"format": "memflask-snapshot", "version": 1, "items": [["k", 5, null]]}',
        b'{"format": "memflask-snapshot", "version": 1, "items": {"k": "v"}}',
        b"[]",
    ],
)
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


def test_periodic_saves(tmp_path, clock):
    store = MemoryStore(clock=clock)
    saver = PeriodicSaver(store, tmp_path / "s", interval=0.2)
    saver.start()
    try:
        store.update("k", lambda current, now: Item("v"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (tmp_path / "s").exists() and "k" in (tmp_path / "s").read_text():
                break
            time.sleep(0.05)
        else:
            pytest.fail("no periodic save within 10 s")
    finally:
        saver.stop()


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


def test_the_saver_thread_survives_a_failed_save(tmp_path, clock, monkeypatch, caplog):
    calls = []
    real_save = snapshot.save

    def fail_first_time(store, path):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("a bug, or anything but an OSError")
        return real_save(store, path)

    monkeypatch.setattr(snapshot, "save", fail_first_time)
    store = MemoryStore(clock=clock)
    store.update("k", lambda current, now: Item("v"))
    saver = PeriodicSaver(store, tmp_path / "s", interval=0.05)
    with caplog.at_level(logging.ERROR, logger="memflask.snapshot"):
        saver.start()
        try:
            deadline = time.monotonic() + 10
            while not (tmp_path / "s").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert (tmp_path / "s").exists(), "no save after the failed one"
        finally:
            saver.stop()
    assert calls[:2] == ["memflask-snapshot", "memflask-snapshot"]
    assert "save failed" in caplog.text and "RuntimeError" in caplog.text  # with its traceback


def test_a_clean_stop_goes_on_when_the_last_save_fails(tmp_path, clock, monkeypatch, caplog):
    def fail(store, path):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(snapshot, "save", fail)
    lifecycle = Lifecycle(MemoryStore(clock=clock), tmp_path / "s", 0)
    lifecycle.startup()
    with caplog.at_level(logging.ERROR, logger="memflask.snapshot"):
        lifecycle.shutdown()  # logs, does not raise
    assert "save failed" in caplog.text


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
