"""The memory store's s3fifo eviction policy (memflask/store/eviction.py): what it keeps
through a scan, its caps and counts, and a state machine of its invariants on a fake clock.
The lru policy is the model in test_properties.py."""

from __future__ import annotations

import random
from collections import Counter
from typing import Optional

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from memflask import create_app
from memflask.config import ConfigError
from memflask.store import (
    DELETE,
    EXPIRY_SECOND_BYTES,
    ITEM_BYTES,
    Item,
    ItemTooLarge,
    MemoryStore,
    item_bytes,
    snapshot,
)
from memflask.store.eviction import GHOST_FIRST_SLOTS, POLICY_ITEM_BYTES, SMALL, S3Fifo
from tests.harness.clock import FakeClock


def value_of(text: str):
    return lambda current, now: Item(text)


def fill(store: MemoryStore, keys) -> int:
    """get each key, and set it on a miss; the hits."""
    hits = 0
    for key in keys:
        if store.get(key) is None:
            store.update(key, value_of(f"v-{key}"))
        else:
            hits += 1
    return hits


def hot_then_scan(eviction: str) -> tuple[MemoryStore, list[str]]:
    """100 keys read over and over in a store of 200, then a scan of 1,000 new keys."""
    store = MemoryStore(max_keys=200, eviction=eviction)
    hot = [f"hot:{n}" for n in range(100)]
    for _ in range(4):
        fill(store, hot)
    fill(store, [f"scan:{n}" for n in range(1000)])
    return store, hot


def test_a_scan_leaves_the_keys_read_often_under_s3fifo():
    store, hot = hot_then_scan("s3fifo")
    assert all(store.peek(key) is not None for key in hot)
    assert len(store._items) == 200


def test_the_same_scan_pushes_them_all_out_under_lru():
    store, hot = hot_then_scan("lru")
    assert not any(store.peek(key) is not None for key in hot)


def test_a_key_never_read_is_evicted_before_one_read():
    store = MemoryStore(max_keys=10, eviction="s3fifo")
    fill(store, [f"k{n}" for n in range(10)])
    fill(store, ["k0"])  # read: promoted when it reaches the small queue's end
    fill(store, ["new"])
    assert store.peek("k0") is not None
    assert store._items["k0"].uses == 0  # in the main queue, its count started afresh
    assert store.peek("k1") is None  # the oldest never read
    assert store.stats()["evictions"] == 1


def test_a_key_written_again_soon_after_its_eviction_skips_the_small_queue():
    store = MemoryStore(max_keys=10, eviction="s3fifo")
    fill(store, [f"k{n}" for n in range(11)])  # k0 evicted, remembered in the ghost table
    store.update("k0", value_of("again"))
    assert store._items["k0"].uses == 0  # in the main queue
    assert "k0" not in list(store._policy.small)
    store.update("k0-neighbour", value_of("x"))
    assert store._items["k0-neighbour"].uses == SMALL


def test_a_read_moves_nothing_under_s3fifo():
    store = MemoryStore(max_keys=10, eviction="s3fifo")
    fill(store, ["a", "b", "c"])
    store.get("a")
    assert list(store._items) == ["a", "b", "c"]
    assert store._items["a"].uses == SMALL + 1


def test_a_rewrite_counts_as_a_read_and_keeps_its_place():
    store = MemoryStore(max_keys=10, eviction="s3fifo")
    fill(store, ["a", "b"])
    store.update("a", value_of("longer value"))
    assert list(store._items) == ["a", "b"]
    assert store._items["a"].uses == SMALL + 1
    assert store._policy.small_bytes == sum(
        item_bytes(key, item.value, None) + POLICY_ITEM_BYTES for key, item in store._items.items()
    )


def test_one_eviction_moves_at_most_max_moves_items(monkeypatch):
    monkeypatch.setattr(S3Fifo, "MAX_MOVES", 5)
    store = MemoryStore(max_keys=50, eviction="s3fifo")
    keys = [f"k{n}" for n in range(50)]
    for _ in range(4):
        fill(store, keys)  # every key read three times: all would be moved along
    order = list(store._items)
    store.update("new", value_of("x"))
    # Five moved along, then the sixth evicted whatever its reads.
    assert store.peek(order[5]) is None
    assert list(store._items)[-6:] == ["new", *order[:5]]


def test_a_key_written_again_after_its_delete_takes_a_new_place():
    store = MemoryStore(max_keys=3, eviction="s3fifo")
    fill(store, ["a", "b", "c"])
    store.update("a", lambda current, now: DELETE)
    fill(store, ["a", "d"])  # "a" is newer than "b" and "c" now
    assert [key for key in ("a", "b", "c", "d") if store.peek(key) is not None] == ["a", "c", "d"]


def test_an_expired_key_written_again_takes_a_new_place():
    clock = FakeClock()
    store = MemoryStore(max_keys=3, clock=clock, eviction="s3fifo")
    store.update("a", lambda current, now: Item("x", now + 1))
    fill(store, ["b", "c"])
    clock.tick(2)
    fill(store, ["a", "d"])
    assert [key for key in ("a", "b", "c", "d") if store.peek(key) is not None] == ["a", "c", "d"]


def test_deleted_small_queue_keys_do_not_pile_up():
    store = MemoryStore(max_keys=0, eviction="s3fifo")
    for n in range(20_000):
        store.update(f"k{n}", value_of("x"))
        store.update(f"k{n}", lambda current, now: DELETE)
    assert len(store._policy.small) <= 64 + 2
    assert store._policy.small_keys == 0
    assert store.stats()["bytes"] == 0


def test_expired_items_go_before_live_ones_are_evicted():
    clock = FakeClock()
    store = MemoryStore(max_keys=10, clock=clock, eviction="s3fifo")
    store.SWEEP_STEP = 0  # leave them for eviction to meet
    for n in range(5):
        store.update(f"short{n}", lambda current, now: Item("x", now + 1))
    fill(store, [f"live{n}" for n in range(5)])
    clock.tick(2)
    fill(store, [f"new{n}" for n in range(5)])
    stats = store.stats()
    assert (stats["expired"], stats["evictions"], stats["keyCount"]) == (5, 0, 10)


def test_max_bytes_holds_with_items_of_very_different_sizes():
    store = MemoryStore(max_bytes=200_000, eviction="s3fifo")
    generator = random.Random(7)
    for _ in range(5_000):
        key = f"k{generator.randrange(1_000)}"
        if store.get(key) is None:
            store.update(key, value_of("x" * generator.choice([1, 10, 100, 1_000, 10_000])))
        assert store._bytes <= 200_000
    assert store.stats()["evictions"] > 0
    assert store._bytes == counted_bytes(store)


def test_an_item_larger_than_the_store_is_refused_and_changes_nothing():
    store = MemoryStore(max_bytes=ITEM_BYTES + 200, eviction="s3fifo")
    store.update("a", value_of("x"))
    before = store.stats()
    with pytest.raises(ItemTooLarge):
        store.update("b", value_of("x" * 1_000))
    assert store.stats() == before


def test_flush_empties_the_queues_and_the_ghost_table():
    store = MemoryStore(max_keys=2_000, eviction="s3fifo")
    fill(store, [f"k{n}" for n in range(3_000)])
    store.flush()
    policy = store._policy
    assert (len(policy.small), policy.small_keys, policy.small_bytes) == (0, 0, 0)
    assert len(policy.ghost) == GHOST_FIRST_SLOTS
    assert store.stats()["bytes"] == 0
    fill(store, ["again"])
    assert store._bytes == counted_bytes(store)


def test_a_snapshot_restores_into_an_s3fifo_store(tmp_path):
    path = tmp_path / "cache.snapshot"
    store = MemoryStore(max_keys=100, eviction="s3fifo")
    fill(store, [f"k{n}" for n in range(150)])
    held = {key: item.value for key, item in store._items.items()}
    snapshot.save(store, path)
    restored = MemoryStore(max_keys=100, eviction="s3fifo")
    assert snapshot.load(restored, path) == 100
    assert {key: item.value for key, item in restored._items.items()} == held
    assert all(item.uses == SMALL for item in restored._items.values())  # cold: all new
    assert restored._bytes == counted_bytes(restored)


def test_stats_and_the_app_say_which_policy_runs():
    app = create_app({"TESTING": True, "EVICTION": "s3fifo", "SIZE": 5})
    assert app.extensions["memflask"].store.eviction == "s3fifo"
    answer = app.test_client().get("/stats").get_json()
    assert answer["eviction"] == "s3fifo"
    assert create_app({"TESTING": True}).test_client().get("/stats").get_json()["eviction"] == (
        "lru"
    )


def test_eviction_is_a_bad_setting_on_redis():
    with pytest.raises(ConfigError, match=r"EVICTION is for the memory store.*maxmemory-policy"):
        create_app({"EVICTION": "s3fifo", "STORE_URL": "redis://127.0.0.1:1/0"})


def counted_bytes(store: MemoryStore) -> int:
    """What the store should count: its items (with the policy's bytes for each) and their
    seconds' buckets."""
    items = store._items
    total = sum(
        item_bytes(key, item.value, item.expires_at) + POLICY_ITEM_BYTES
        for key, item in items.items()
    )
    return total + EXPIRY_SECOND_BYTES * len(
        {int(item) for item in items.values() if item.expires_at}
    )


# -- the invariants, on a fake clock ------------------------------------------------------

KEYS = st.sampled_from([f"k{n}" for n in range(8)] + ["é", "key-with-a-longer-name"])
VALUES = st.text(alphabet="xyzé€ ", max_size=40)
TTLS = st.one_of(st.none(), st.integers(min_value=-2, max_value=6), st.floats(0.1, 6.0))


class S3FifoMachine(RuleBasedStateMachine):
    """Drive an s3fifo MemoryStore with random operations and clock moves.

    Which items it evicts is the policy's choice; what must hold whatever it chooses: the
    caps; a read answers the value last written to a key or nothing, never an expired or
    deleted one; the item just written is held; hits and misses counted exactly, and each
    item a write took out besides its own key counted as evicted or expired; expired
    items reclaimed before any live item is evicted; and the policy's own books (its
    queue, counts, bytes) agree with the items.
    """

    @initialize(
        max_keys=st.integers(0, 6),
        max_bytes=st.sampled_from([0, ITEM_BYTES + 200, 3 * ITEM_BYTES + 600, 8_000]),
        sweep_step=st.sampled_from([0, MemoryStore.SWEEP_STEP]),
        max_moves=st.sampled_from([1, S3Fifo.MAX_MOVES]),
    )
    def start(self, max_keys: int, max_bytes: int, sweep_step: int, max_moves: int) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(
            max_keys=max_keys, max_bytes=max_bytes, clock=self.clock, eviction="s3fifo"
        )
        self.store.SWEEP_STEP = sweep_step
        self.store._policy.MAX_MOVES = max_moves
        self.max_keys, self.max_bytes = max_keys, max_bytes
        # Every key written and not deleted since: its last value and expiry. The store
        # holds a subset of these (it evicts), with the same values.
        self.written: dict[str, tuple[str, Optional[float]]] = {}
        self.hits = self.misses = 0

    def expected(self, key: str) -> Optional[str]:
        value, expires_at = self.written.get(key, (None, None))
        if expires_at is not None and expires_at <= self.clock.now:
            return None
        return value

    def write(self, key: str, change) -> Optional[Item]:
        store = self.store
        before = set(store._items) - {key}
        # The key's own item, expired: reclaimed by the write, and counted so.
        own_expired = key in store._items and store._items[key] <= self.clock.now
        evictions, counted = store._evictions, store._evictions + store._expired
        try:
            item = store.update(key, change)
        finally:
            taken_out = before - set(store._items)
            assert store._evictions + store._expired - counted == len(taken_out) + own_expired
            if store._evictions > evictions:  # nothing expired was left
                assert not [k for k, held in store._items.items() if held <= self.clock.now]
        return item

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: str, ttl) -> None:
        expires_at = None if ttl is None else self.clock.now + ttl
        try:
            item = self.write(key, lambda current, now: Item(value, expires_at))
        except ItemTooLarge:
            second = EXPIRY_SECOND_BYTES if expires_at is not None else 0
            size = item_bytes(key, value, expires_at) + second + POLICY_ITEM_BYTES
            assert self.max_bytes and size > self.max_bytes
            return
        self.written[key] = (value, expires_at)
        if expires_at is None or expires_at > self.clock.now:  # held, whatever was evicted
            assert self.store._items.get(key) is item

    @rule(key=KEYS, suffix=VALUES)
    def append(self, key: str, suffix: str) -> None:
        """A read-modify-write keeping the expiry, on what the store holds."""
        outcome = {}

        def change(current, now):
            if current is None:
                outcome["item"] = Item(suffix, None)
            else:
                outcome["item"] = Item(current.value + suffix, current.expires_at)
            return outcome["item"]

        try:
            item = self.write(key, change)
        except ItemTooLarge:
            return
        self.written[key] = (item.value, item.expires_at)
        assert item.expires_at is not None or self.store._items.get(key) is item

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        item = self.store.get(key)
        if item is None:
            self.misses += 1
        else:
            self.hits += 1
            assert item.value == self.expected(key)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        assert self.write(key, lambda current, now: DELETE) is None
        self.written.pop(key, None)

    @rule(seconds=st.sampled_from([0.5, 1, 2, 5]))
    def tick(self, seconds: float) -> None:
        self.clock.tick(seconds)

    @precondition(lambda self: len(self.written) > 2)
    @rule()
    def flush(self) -> None:
        self.store.flush()
        self.written.clear()

    @rule()
    def same_counters(self) -> None:
        stats = self.store.stats()
        assert (stats["hits"], stats["misses"]) == (self.hits, self.misses)
        assert stats["keyCount"] == len(self.store._items)

    @invariant()
    def held_items_are_the_last_written(self) -> None:
        for key, item in self.store._items.items():
            assert (item.value, item.expires_at) == self.written[key]

    @invariant()
    def within_the_caps(self) -> None:
        if self.max_keys:
            assert len(self.store._items) <= self.max_keys
        if self.max_bytes:
            assert self.store._bytes <= self.max_bytes

    @invariant()
    def the_policys_books_agree_with_the_items(self) -> None:
        store, policy = self.store, self.store._policy
        small = [key for key, item in store._items.items() if item.uses >= SMALL]
        assert policy.small_keys == len(small)
        # Each small-queue key has one live entry in the deque, after its dead ones.
        entries = Counter(policy.small)
        for key in {*entries, *small}:
            assert entries[key] == policy.dead.get(key, 0) + (key in small)
        assert policy.dead_entries == sum(policy.dead.values())
        assert policy.small_bytes == sum(
            item_bytes(key, store._items[key].value, store._items[key].expires_at)
            + POLICY_ITEM_BYTES
            for key in small
        )
        assert {item.uses for item in store._items.values()} <= {0, 1, 2, 3, SMALL, SMALL + 1}
        assert store._bytes == counted_bytes(store)


S3FifoMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_s3fifo_store_keeps_its_invariants = S3FifoMachine.TestCase
