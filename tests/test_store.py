"""The in-memory store alone, with a clock the tests move by hand."""

from __future__ import annotations

import threading

import pytest
from freezegun import freeze_time

from memflask.store import DELETE, Clock, Item, ItemTooLarge, MemoryStore, utf8_len


def put(value, expires_at=None):
    return lambda current, now: Item(value, expires_at)


def test_set_then_get(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1"))
    item = store.get("a")
    assert item.value == "1"
    assert item.expires_at is None


def test_item_expires_at_the_exact_second(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 10))
    clock.tick(9.999)
    assert store.get("a").value == "1"
    clock.tick(0.001)
    assert store.get("a") is None


def test_item_with_past_expiry_is_never_stored(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("old"))
    written = store.update("a", put("new", clock.now))
    assert written.value == "new"
    assert store.get("a") is None
    assert store.stats()["keyCount"] == 0
    assert store.stats()["bytes"] == 0


def test_expired_item_is_absent_for_update(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 1))
    clock.tick(1)
    seen = []
    store.update("a", lambda current, now: seen.append(current))
    assert seen == [None]


def test_versions_change_on_every_write(clock):
    store = MemoryStore(clock=clock)
    first = store.update("a", put("1")).version
    second = store.update("a", put("1")).version
    third = store.update("b", put("1")).version
    assert len({first, second, third}) == 3


def test_exception_in_change_leaves_everything_unchanged(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1"))
    before = store.get("a")

    def refuse(current, now):
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.update("a", refuse)
    assert store.get("a") is before


def test_delete_change_removes_the_key(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1"))
    assert store.update("a", lambda current, now: DELETE) is None
    assert store.get("a") is None
    assert store.stats()["bytes"] == 0


def test_lru_evicts_least_recently_used_when_over_size(clock):
    store = MemoryStore(max_keys=2, clock=clock)
    store.update("a", put("1"))
    store.update("b", put("2"))
    store.get("a")  # a read hit makes "a" most recent, so "b" is the oldest
    store.update("c", put("3"))
    assert store.peek("b") is None
    assert store.peek("a").value == "1"
    assert store.peek("c").value == "3"
    assert store.stats()["evictions"] == 1


def test_write_makes_key_most_recent(clock):
    store = MemoryStore(max_keys=2, clock=clock)
    store.update("a", put("1"))
    store.update("b", put("2"))
    store.update("a", put("1 again"))
    store.update("c", put("3"))
    assert store.peek("b") is None
    assert store.peek("a").value == "1 again"


def test_peek_does_not_change_recency_or_counts(clock):
    store = MemoryStore(max_keys=2, clock=clock)
    store.update("a", put("1"))
    store.update("b", put("2"))
    store.peek("a")
    store.update("c", put("3"))
    assert store.peek("a") is None
    stats = store.stats()
    assert (stats["hits"], stats["misses"]) == (0, 0)


def test_size_one_keeps_only_the_newest_key(clock):
    # The original's own LRU test: with one slot, the second key pushes out the first.
    store = MemoryStore(max_keys=1, clock=clock)
    store.update("name", put("Andrew"))
    assert store.get("name").value == "Andrew"
    store.update("place", put("Moon"))
    assert store.get("name") is None
    assert store.get("place").value == "Moon"


def test_expired_items_are_reclaimed_before_live_ones_are_evicted(clock):
    store = MemoryStore(max_keys=3, clock=clock)
    store.update("live-old", put("1"))
    store.update("dying", put("2", clock.now + 5))
    store.update("live-new", put("3"))
    clock.tick(5)
    store.update("fresh", put("4"))
    assert store.peek("live-old").value == "1"
    assert store.peek("dying") is None
    stats = store.stats()
    assert stats["evictions"] == 0
    assert stats["expired"] == 1


def test_max_bytes_evicts_until_under_cap(clock):
    store = MemoryStore(max_bytes=10, clock=clock)
    store.update("a", put("1234"))  # 5 bytes
    store.update("b", put("1234"))  # 10 bytes
    store.update("c", put("12"))  # 13 bytes: "a" must go
    assert store.peek("a") is None
    assert store.stats()["bytes"] == 8
    assert store.stats()["evictions"] == 1


def test_item_bigger_than_max_bytes_is_refused_and_nothing_changes(clock):
    store = MemoryStore(max_bytes=10, clock=clock)
    store.update("a", put("1"))
    with pytest.raises(ItemTooLarge):
        store.update("b", put("x" * 10))
    assert store.peek("a").value == "1"
    assert store.peek("b") is None


def test_bytes_count_utf8_of_keys_and_values(clock):
    store = MemoryStore(clock=clock)
    store.update("clé", put("été"))
    assert store.stats()["bytes"] == 4 + 5
    store.update("clé", put("e"))
    assert store.stats()["bytes"] == 4 + 1


def test_key_count_excludes_expired_items(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 1))
    store.update("b", put("2"))
    assert store.stats()["keyCount"] == 2
    clock.tick(1)
    stats = store.stats()
    assert stats["keyCount"] == 1
    assert stats["bytes"] == 2
    assert stats["expired"] == 1


def test_hits_and_misses_count_expired_reads_as_misses(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 1))
    store.get("a")
    clock.tick(1)
    store.get("a")
    store.get_many(["a", "b"])
    stats = store.stats()
    assert (stats["hits"], stats["misses"]) == (1, 3)


def test_writes_sweep_expired_items_without_any_read(clock):
    store = MemoryStore(clock=clock)
    for number in range(100):
        store.update(f"dead{number}", put("x", clock.now + 1))
    clock.tick(1)
    for number in range(20):
        store.update(f"live{number}", put("x"))
    # No read touched the dead keys, yet the writes reclaimed them in small steps.
    assert len(store._items) == 20
    assert store._bytes == sum(len(f"live{number}x") for number in range(20))


def test_rewritten_items_do_not_grow_the_expiry_heap_without_bound(clock):
    store = MemoryStore(clock=clock)
    for number in range(10_000):
        store.update("counter", put(str(number), clock.now + 60))
    assert len(store._expiries) <= 2 * 1 + 64 + 1


def test_flush_removes_everything(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 5))
    store.update("b", put("2"))
    store.flush()
    assert store.get("a") is None
    assert store.get("b") is None
    assert store.stats()["keyCount"] == 0
    assert store.stats()["bytes"] == 0


def test_default_clock_reads_the_time_at_call_so_freezegun_controls_it():
    store = MemoryStore()
    with freeze_time("2030-01-01 00:00:00") as frozen:
        store.update("a", put("1", Clock()() + 10))
        frozen.tick(9)
        assert store.get("a").value == "1"
        frozen.tick(1)
        assert store.get("a") is None


def test_concurrent_read_modify_writes_lose_nothing(clock):
    store = MemoryStore(clock=clock)
    store.update("n", put("0"))

    def increment(current, now):
        return Item(str(int(current.value) + 1), None)

    def worker():
        for _ in range(2000):
            store.update("n", increment)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("n").value == str(8 * 2000)


@pytest.mark.parametrize(
    "text, expected", [("", 0), ("abc", 3), ("é", 2), ("€", 3), ("😀", 4), ("a\x00b", 3)]
)
def test_utf8_len(text, expected):
    assert utf8_len(text) == expected
