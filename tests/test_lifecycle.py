"""memflask/lifecycle.py: the snapshot saver thread, and an app's start and stop around it."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from memflask.lifecycle import Lifecycle, PeriodicSaver
from memflask.store import Item, MemoryStore, snapshot
from memflask.store.snapshot import FORMAT
from tests.store.test_snapshot import write_version_2


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
    store = MemoryStore(clock=clock)
    lifecycle = Lifecycle(store, tmp_path / "s", 0)
    lifecycle.startup()
    store.update("k", lambda current, now: Item("v"))  # something to save
    with caplog.at_level(logging.ERROR, logger="memflask.snapshot"):
        lifecycle.shutdown()  # logs, does not raise
    assert "save failed" in caplog.text


def test_lifecycle_loads_with_the_limits_it_is_given(tmp_path, clock):
    path = tmp_path / "s"
    write_version_2(path, [b'["small", "v", null]', b'["large", "' + b"v" * 100 + b'", null]'])
    lifecycle = Lifecycle(MemoryStore(clock=clock), path, 0, max_key_bytes=250, max_value_bytes=10)
    lifecycle.startup()
    assert lifecycle.restored == 1
    assert lifecycle.store.peek("large") is None


def test_an_unchanged_store_is_not_saved_again_nor_logged(tmp_path, clock, monkeypatch, caplog):
    saves = []
    real_save = snapshot.save

    def counted_save(store, path):
        saves.append(store.export())
        return real_save(store, path)

    monkeypatch.setattr(snapshot, "save", counted_save)
    store = CountedReads(clock=clock)
    store.update("k", lambda current, now: Item("v", clock.now + 5))
    saver = PeriodicSaver(store, tmp_path / "s", interval=0.01)
    with caplog.at_level(logging.INFO, logger="memflask.snapshot"):
        saver.start()
        try:
            wait_for(lambda: store.looked >= 10, "ten intervals")
            assert len(saves) == 1  # the first interval; nine more found nothing changed
            clock.tick(10)
            looked = store.looked
            wait_for(lambda: store.looked >= looked + 3, "three more intervals")
            assert len(saves) == 1  # expired, but not reclaimed: the same file would do
            store.stats()  # reclaims it: a change
            wait_for(lambda: len(saves) == 2, "a save of the reclaimed item")
            looked = store.looked
            wait_for(lambda: store.looked >= looked + 3, "three more intervals")
        finally:
            saver.stop()
    assert saves == [[("k", "v", clock.now - 5)], []]  # not even at the stop
    saved_lines = [r.getMessage() for r in caplog.records if "saved" in r.getMessage()]
    assert saved_lines == [
        f"snapshot {tmp_path / 's'}: saved 1 items",
        f"snapshot {tmp_path / 's'}: saved 0 items",
    ]
    assert (
        caplog.records[-1].getMessage()
        == f"snapshot {tmp_path / 's'}: unchanged since the last save"
    )


def test_a_start_without_a_snapshot_and_no_writes_saves_nothing(tmp_path, clock):
    lifecycle = Lifecycle(MemoryStore(clock=clock), tmp_path / "s", 0)
    lifecycle.startup()
    lifecycle.shutdown()
    assert not (tmp_path / "s").exists()  # no file restores as empty, as this store was


def test_a_start_from_a_snapshot_saves_it_once_even_unchanged(tmp_path, clock):
    path = tmp_path / "s"
    path.write_text(json.dumps({"format": FORMAT, "version": 1, "items": [["k", "v", None]]}))
    lifecycle = Lifecycle(MemoryStore(clock=clock), path, 0)
    lifecycle.startup()
    lifecycle.shutdown()  # written again in version 2 (it could have held skipped items)
    assert path.read_text().splitlines()[1:] == ['["k","v",null]', "]}"]


class CountedReads(MemoryStore):
    """A memory store that counts how often the saver looked at its change count."""

    looked = 0

    @property
    def changes(self) -> int:
        self.looked += 1
        return super().changes


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"{what} within 10 s"
        time.sleep(0.01)
