"""The memory store's leases and stale items (memflask/store/leases.py): what they hold
stays counted and bounded, by MAX_LEASES and by MAX_BYTES."""

from __future__ import annotations

from memflask.store import DELETE, Item, LeaseNotHeld, MemoryStore
from tests.harness.clock import FakeClock


def write(store, key, value, **options):
    return store.write(key, lambda current, now: Item(value, now + 10), **options)


def test_bytes_come_back_to_the_items_alone_once_leases_and_stale_items_go():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    write(store, "k", "v")
    baseline = store.stats()["bytes"]
    token = store.get_leased("cold", 30).token
    write(store, "other", "w", stale=60)
    store.invalidate("k")
    assert store.stats()["bytes"] > baseline
    write(store, "cold", "x", lease=token)
    store.write("other", lambda current, now: None)  # no change: nothing ends
    for key in ("cold", "other", "k"):
        store.update(key, lambda current, now: DELETE)
    assert store.stats()["bytes"] == 0


def test_at_most_max_leases_are_kept_the_oldest_let_go():
    store = MemoryStore(clock=FakeClock())
    store._leases.max_entries = 3
    tokens = [store.get_leased(f"k{n}", 30).token for n in range(5)]
    for n in (0, 1):  # let go: their holders' writes are refused
        try:
            write(store, f"k{n}", "v", lease=tokens[n])
        except LeaseNotHeld:
            pass
        else:
            raise AssertionError(f"k{n}'s lease was kept past MAX_LEASES")
    for n in (2, 3, 4):
        assert write(store, f"k{n}", "v", lease=tokens[n]).value == "v"
    assert len(store._leases.entries) == 0


def test_stale_items_stay_within_max_bytes_and_go_before_live_items():
    store = MemoryStore(max_bytes=20_000, clock=FakeClock())
    for n in range(20):
        write(store, f"k{n}", "x" * 500)
    for n in range(10):
        store.invalidate(f"k{n}")
    assert len(store._leases.entries) == 10
    for n in range(20, 60):  # new items push the stale ones out first, then live ones
        write(store, f"k{n}", "x" * 500)
        assert store.stats()["bytes"] <= 20_000
        if store.stats()["evictions"]:
            assert store._leases.entries == {}, f"a live item went before a stale one ({n})"
    assert store.stats()["evictions"] > 0  # the test did reach evictions
