"""The in-memory store alone, with a clock the tests move by hand."""

from __future__ import annotations

import sys
import threading

import pytest
from freezegun import freeze_time

from memflask.store import (
    DELETE,
    EXPIRING_ITEM_BYTES,
    EXPIRY_SECOND_BYTES,
    INDEX_ENTRY_BYTES,
    ITEM_BYTES,
    Clock,
    Item,
    ItemTooLarge,
    MemoryStore,
    item_bytes,
    utf8_len,
)
from memflask.store.expiry_index import ExpiryIndex


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
    store = MemoryStore(max_bytes=2 * item_bytes("a", "1234", None), clock=clock)
    store.update("a", put("1234"))
    store.update("b", put("1234"))  # exactly at the cap
    store.update("c", put("12"))  # over it: "a" must go
    assert store.peek("a") is None
    assert store.stats()["bytes"] == item_bytes("b", "1234", None) + item_bytes("c", "12", None)
    assert store.stats()["evictions"] == 1


def test_item_bigger_than_max_bytes_is_refused_and_nothing_changes(clock):
    store = MemoryStore(max_bytes=item_bytes("a", "1", None) + 5, clock=clock)
    store.update("a", put("1"))
    with pytest.raises(ItemTooLarge):
        store.update("b", put("x" * 10))
    assert store.peek("a").value == "1"
    assert store.peek("b") is None


def test_item_whose_second_does_not_fit_beside_it_is_refused(clock):
    alone = item_bytes("a", "1", clock.now + 10)
    store = MemoryStore(max_bytes=alone + EXPIRY_SECOND_BYTES - 1, clock=clock)
    with pytest.raises(ItemTooLarge):
        store.update("a", put("1", clock.now + 10))
    store.update("a", put("1"))  # without an expiry it fits
    assert store.stats()["bytes"] == item_bytes("a", "1", None)


def test_bytes_count_the_str_objects_of_keys_and_values_and_the_item(clock):
    store = MemoryStore(clock=clock)
    store.update("clé", put("été"))
    assert store.stats()["bytes"] == sys.getsizeof("clé") + sys.getsizeof("été") + ITEM_BYTES
    store.update("clé", put("e"))
    assert store.stats()["bytes"] == sys.getsizeof("clé") + sys.getsizeof("e") + ITEM_BYTES
    store.update("wide", put("€" * 10))  # 2 bytes a character, by its widest one
    assert item_bytes("wide", "€" * 10, None) == (
        sys.getsizeof("wide") + sys.getsizeof("€" * 10) + ITEM_BYTES
    )
    assert sys.getsizeof("€" * 10) - sys.getsizeof("€") == 2 * 9


def test_each_second_in_which_items_expire_counts_once(clock):
    store = MemoryStore(clock=clock)
    text = sys.getsizeof("a") + sys.getsizeof("1")
    store.update("a", put("1", clock.now + 10.2))
    assert store.stats()["bytes"] == text + EXPIRING_ITEM_BYTES + EXPIRY_SECOND_BYTES
    store.update("b", put("1", clock.now + 10.7))  # the same second: its bucket is shared
    assert store.stats()["bytes"] == 2 * (text + EXPIRING_ITEM_BYTES) + EXPIRY_SECOND_BYTES
    store.update("c", put("1", clock.now + 11.2))  # another second
    assert store.stats()["bytes"] == 3 * (text + EXPIRING_ITEM_BYTES) + 2 * EXPIRY_SECOND_BYTES
    store.update("a", lambda current, now: DELETE)
    store.update("b", put("1"))  # no expiry now: the first second has no live item left
    assert store.stats()["bytes"] == (
        2 * text + ITEM_BYTES + EXPIRING_ITEM_BYTES + EXPIRY_SECOND_BYTES
    )
    clock.tick(12)
    assert store.stats()["bytes"] == text + ITEM_BYTES


def test_key_count_excludes_expired_items(clock):
    store = MemoryStore(clock=clock)
    store.update("a", put("1", clock.now + 1))
    store.update("b", put("2"))
    assert store.stats()["keyCount"] == 2
    clock.tick(1)
    stats = store.stats()
    assert stats["keyCount"] == 1
    assert stats["bytes"] == item_bytes("b", "2", None)
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
    assert store._bytes == sum(item_bytes(f"live{number}", "x", None) for number in range(20))


def index_entries(store: MemoryStore) -> int:
    """Entries in the expiry index, including those of items since rewritten or removed."""
    pending = sum(len(bucket) - 1 for bucket in store._index.buckets.values())  # [count, keys...]
    return (
        pending + len(store._index.due_bucket) - store._index.due_position + len(store._index.late)
    )


def test_rewritten_items_do_not_grow_the_expiry_index_without_bound(clock):
    store = MemoryStore(clock=clock)
    for number in range(10_000):
        clock.tick(1)  # each write files the counter under a new second
        store.update("counter", put(str(number), clock.now + 60))
    # Each rewrite leaves its previous entry and bucket behind, until they may hold more
    # than the garbage floor; then the index is rebuilt.
    left_behind = INDEX_ENTRY_BYTES + sys.getsizeof("counter") + EXPIRY_SECOND_BYTES
    assert len(store._index.seconds) <= ExpiryIndex.GARBAGE_FLOOR // left_behind + 2
    assert index_entries(store) <= ExpiryIndex.GARBAGE_FLOOR // left_behind + 2
    assert store.stats()["bytes"] == item_bytes("counter", "9999", 1) + EXPIRY_SECOND_BYTES


def test_removed_items_leave_index_garbage_of_at_most_an_eighth_of_the_bytes(clock):
    store = MemoryStore(clock=clock)
    store._index.garbage_floor = 0
    for number in range(1000):
        store.update(f"keep{number}", put("x", clock.now + 3600))
    for number in range(5000):
        store.update(f"gone{number}", put("x", clock.now + 3600))
        store.update(f"gone{number}", lambda current, now: DELETE)
        assert store._index.garbage <= store._bytes // 8
    stale = index_entries(store) - 1000
    assert stale * (INDEX_ENTRY_BYTES + sys.getsizeof("gone0")) <= store._bytes // 8
    clock.tick(3600)
    assert store.stats()["expired"] == 1000
    assert store.stats()["bytes"] == 0
    assert index_entries(store) == 0


def test_expired_items_go_before_live_ones_within_the_second_they_expire_in(clock):
    store = MemoryStore(max_keys=2, clock=clock)
    store.update("later", put("1", clock.now + 1.5))
    store.update("sooner", put("2", clock.now + 1.2))  # the same whole second
    clock.tick(1.3)  # "sooner" has expired, "later" has not
    store.update("new", put("3"))
    assert store.peek("later").value == "1"
    assert store.peek("sooner") is None
    assert (store.stats()["expired"], store.stats()["evictions"]) == (1, 0)
    # Written into the second being reclaimed, after its keys were sorted.
    store.update("new", lambda current, now: DELETE)
    store.update("late", put("4", clock.now + 0.1))
    clock.tick(0.15)
    store.update("newer", put("5"))
    assert store.peek("late") is None
    assert store.peek("later").value == "1"
    assert (store.stats()["expired"], store.stats()["evictions"]) == (2, 0)


def test_items_rewritten_within_the_second_being_reclaimed_keep_their_order(clock):
    store = MemoryStore(max_keys=3, clock=clock)
    store.update("live", put("0"))
    store.update("a", put("1", clock.now + 1.2))
    store.update("b", put("2", clock.now + 1.6))  # the same whole second
    clock.tick(1.1)
    store.stats()  # that second has come: its keys are sorted, "a" before "b"
    store.update("a", put("1 again", clock.now + 0.8))  # still that second, after "b" now
    clock.tick(0.6)  # "b" has expired, "a" has not
    store.update("new", put("3"))
    assert store.peek("b") is None
    assert store.peek("a").value == "1 again"
    assert store.peek("live").value == "0"
    clock.tick(0.25)  # now "a" has expired too
    store.update("newer", put("4"))
    assert store.peek("a") is None
    assert store.peek("live").value == "0"
    assert (store.stats()["expired"], store.stats()["evictions"]) == (2, 0)


def test_expired_items_are_reclaimed_soonest_first(clock):
    store = MemoryStore(clock=clock)
    for number, seconds in enumerate([3.7, 1.2, 2.5, 1.9, 3.1, 1.5]):
        store.update(f"k{number}", put("x", clock.now + seconds))
    store.update("k1", put("x", clock.now + 4.5))  # rewritten: now the last to expire
    clock.tick(10)
    order = []
    while store._reclaim_expired(clock.now, limit=1):
        order += [key for key in ["k0", "k1", "k2", "k3", "k4", "k5"] if key not in store._items]
        order = list(dict.fromkeys(order))
    assert order == ["k5", "k3", "k2", "k4", "k0", "k1"]


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


def test_a_wall_step_that_splits_the_expiry_seconds_keeps_the_store_within_max_bytes(clock):
    from memflask.commands import Expiry

    def ttl_item(current, now):
        return Item("v" * 100, Expiry(ttl=100).resolve(now))

    store = MemoryStore(max_bytes=40_000, clock=clock)
    clock.tick(0.3)
    number = 0
    while store.stats()["evictions"] == 0:  # full: at the cap
        # Pairs 0.1 s apart, every other second: each pair shares its second's bucket.
        clock.tick(0.1 if number % 2 == 0 else 1.9)
        store.update(f"k{number}", ttl_item)
        number += 1
        assert number < 10_000
    # A step of 1.65 s puts each pair's two instants (.95 and .05) in two seconds: the
    # expiry index counts twice the seconds, and the store must evict to stay at its cap.
    clock.step_wall(1.65)
    stats = store.stats()
    assert stats["bytes"] <= store.max_bytes
