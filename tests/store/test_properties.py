"""Property-based tests: the store against a plain model, and a fuzz of the HTTP layer."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Optional
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from memflask import create_app
from memflask.store import (
    DELETE,
    EXPIRY_SECOND_BYTES,
    ITEM_BYTES,
    Item,
    ItemTooLarge,
    MemoryStore,
    item_bytes,
)
from memflask.store.expiry_index import ExpiryIndex
from tests.harness.clock import FakeClock

KEYS = st.sampled_from(["a", "b", "c", "d", "é", "key-with-a-longer-name"])
VALUES = st.text(alphabet="xyzé€ ", max_size=12)
TTLS = st.one_of(st.none(), st.integers(min_value=-2, max_value=6), st.floats(0.1, 6.0))


class StoreMachine(RuleBasedStateMachine):
    """Drive MemoryStore with random operations and clock moves; compare with a plain model.

    The model is an OrderedDict of live items in recency order and a byte count: each
    item's item_bytes, and each whole second in which live items expire once. Expired
    items vanish from it at once, which is what every reader of the store must see.
    """

    # Caps that hold no item, one small item, two or three, and half a dozen (an item takes
    # ITEM_BYTES and 100 to 170 bytes of text; one with an expiry, a second's bucket too).
    @initialize(
        max_keys=st.integers(0, 4),
        max_bytes=st.sampled_from(
            [0, ITEM_BYTES, ITEM_BYTES + 130, 2 * ITEM_BYTES + 500, 6 * ITEM_BYTES + 900]
        ),
        garbage_floor=st.sampled_from([0, ExpiryIndex.GARBAGE_FLOOR]),
        sweep_step=st.sampled_from([0, 1, MemoryStore.SWEEP_STEP]),
    )
    def start(self, max_keys: int, max_bytes: int, garbage_floor: int, sweep_step: int) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(max_keys=max_keys, max_bytes=max_bytes, clock=self.clock)
        self.store._index.garbage_floor = garbage_floor  # 0: the index is often rebuilt
        # Below the number of keys, writes leave expired items for eviction to reclaim.
        self.store.SWEEP_STEP = sweep_step
        self.max_keys, self.max_bytes = max_keys, max_bytes
        self.model: OrderedDict[str, tuple[str, Optional[float]]] = OrderedDict()
        self.hits = self.misses = self.evictions = self.expired = 0
        self.last_version = 0

    # -- the model --------------------------------------------------------------------

    def expire_model(self) -> None:
        now = self.clock.now
        for key in [k for k, (_, at) in self.model.items() if at is not None and at <= now]:
            del self.model[key]
            self.expired += 1

    def model_bytes(self) -> int:
        items = sum(item_bytes(key, value, at) for key, (value, at) in self.model.items())
        seconds = {int(at) for _, at in self.model.values() if at is not None}
        return items + EXPIRY_SECOND_BYTES * len(seconds)

    def too_large(self, key: str, value: str, expires_at: Optional[float]) -> bool:
        """Whether the item alone, with its second, is over the cap (it is refused)."""
        second = 0 if expires_at is None else EXPIRY_SECOND_BYTES
        return bool(self.max_bytes) and item_bytes(key, value, expires_at) + second > self.max_bytes

    def model_put(self, key: str, value: str, expires_at: Optional[float]) -> None:
        self.model.pop(key, None)
        if expires_at is not None and expires_at <= self.clock.now:
            return
        self.model[key] = (value, expires_at)
        while (self.max_keys and len(self.model) > self.max_keys) or (
            self.max_bytes and self.model_bytes() > self.max_bytes
        ):
            self.model.popitem(last=False)
            self.evictions += 1

    def expiry(self, ttl) -> Optional[float]:
        return None if ttl is None else self.clock.now + ttl

    def check_written(self, item) -> None:
        assert item.version > self.last_version
        self.last_version = item.version

    # -- rules ------------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: str, ttl) -> None:
        self.expire_model()
        expires_at = self.expiry(ttl)
        too_large = self.too_large(key, value, expires_at)
        try:
            item = self.store.update(key, lambda current, now: Item(value, expires_at))
        except ItemTooLarge:
            assert too_large
            return
        assert not too_large
        self.check_written(item)
        self.model_put(key, value, expires_at)

    @rule(key=KEYS, suffix=VALUES)
    def append(self, key: str, suffix: str) -> None:
        """A read-modify-write that keeps the expiry, as /append does."""
        self.expire_model()
        old = self.model.get(key)
        value, expires_at = (old[0] + suffix, old[1]) if old else (suffix, None)
        if self.too_large(key, value, expires_at):
            return

        def change(current, now):
            assert (current is None) == (old is None)
            if current is None:
                return Item(suffix, None)
            return Item(current.value + suffix, current.expires_at)

        self.check_written(self.store.update(key, change))
        self.model_put(key, value, expires_at)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.expire_model()
        item = self.store.get(key)
        if key in self.model:
            self.hits += 1
            self.model.move_to_end(key)
            assert item is not None and item.value == self.model[key][0]
        else:
            self.misses += 1
            assert item is None

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self.expire_model()
        assert self.store.update(key, lambda current, now: DELETE) is None
        self.model.pop(key, None)

    @rule(seconds=st.sampled_from([0.5, 1, 2, 5]))
    def tick(self, seconds: float) -> None:
        self.clock.tick(seconds)

    @precondition(lambda self: len(self.model) > 2)
    @rule()
    def flush(self) -> None:
        self.expire_model()
        self.store.flush()
        self.model.clear()

    @rule()
    def same_counters(self) -> None:
        """/stats, which reclaims every expired item: a rule, not an invariant, so that
        writes also meet expired items not yet reclaimed."""
        self.expire_model()
        stats = self.store.stats()
        assert stats["keyCount"] == len(self.model)
        assert stats["bytes"] == self.model_bytes()
        assert (stats["hits"], stats["misses"]) == (self.hits, self.misses)
        assert stats["evictions"] == self.evictions
        assert stats["expired"] == self.expired

    # -- what must always hold ----------------------------------------------------------

    @invariant()
    def same_items_in_the_same_order(self) -> None:
        # export() reclaims nothing (peek would): expired items stay for the next write.
        self.expire_model()
        expected = [(key, value, at) for key, (value, at) in self.model.items()]
        assert self.store.export() == expected

    @invariant()
    def within_the_caps(self) -> None:
        # Expired items not yet reclaimed count too: the caps hold for what is held.
        if self.max_keys:
            assert len(self.store._items) <= self.max_keys
        if self.max_bytes:
            assert self.store._bytes <= self.max_bytes


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_store_matches_the_model = StoreMachine.TestCase


# -- a fuzz of the HTTP layer ---------------------------------------------------------------

VERBS = st.sampled_from(
    [
        "get",
        "set",
        "delete",
        "checkandset",
        "increment",
        "decrement",
        "append",
        "prepend",
        "flush",
        "stats",
        "add",
        "replace",
        "touch",
        "gat",
        "ttl",
        "mget",
        "batch",
        "healthz",
        "nosuchverb",
        "",
        "get/extra",
    ]
)
NAMES = st.sampled_from(["key", "value", "expire", "ttl", "compare", "other", "verb", ""])
RAW_VALUES = st.one_of(
    st.binary(max_size=30),
    st.sampled_from(
        [
            b"",
            b"0",
            b"-1",
            b"+5",
            b"9223372036854775807",
            b"9" * 40,
            b"\xff\xfe",
            b"\xed\xa0\x80",
            b"1e3",
            b" 1",
            b"k",
        ]
    ),
)
JSON_DOCUMENTS = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(NAMES, st.text(max_size=5)), children, max_size=4)
    ),
    max_leaves=10,
)
BODIES = st.one_of(
    st.none(),
    st.tuples(st.just("application/x-www-form-urlencoded"), RAW_VALUES),
    st.tuples(st.just("application/json"), JSON_DOCUMENTS.map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("application/json"), st.binary(max_size=20)),
    st.tuples(
        st.sampled_from(["text/plain", "multipart/form-data", "application/xml"]),
        st.binary(max_size=20),
    ),
)
HEADERS = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Match", "Prefer", "Origin", "Sec-Fetch-Site"]),
    st.sampled_from(
        [
            '"1"',
            '"2"',
            "*",
            'W/"1"',
            "garbage",
            "",
            "return=representation",
            "cross-site",
            "same-origin",
            "https://evil.example",
            '"1", "2"',
        ]
    ),
    max_size=3,
)


@pytest.fixture(scope="module")
def fuzz_client():
    return create_app({"APP_ENV": "production", "MAX_VALUE_BYTES": 64}).test_client()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    verb=VERBS,
    params=st.lists(st.tuples(NAMES, RAW_VALUES), max_size=6),
    body=BODIES,
    headers=HEADERS,
)
def test_http_layer_never_fails_and_every_error_is_json(
    fuzz_client, method, verb, params, body, headers
):
    query = "&".join(f"{quote_from_bytes(n.encode())}={quote_from_bytes(v)}" for n, v in params)
    kwargs = {"method": method, "query_string": query, "headers": headers}
    if body is not None:
        kwargs["content_type"], kwargs["data"] = body
    response = fuzz_client.open(f"/{verb}", **kwargs)
    assert response.status_code < 500, response.data
    if response.status_code >= 400 and method != "HEAD":
        assert response.mimetype == "application/json"
        assert set(response.json) == {"error", "message"}
        assert isinstance(response.json["error"], str) and response.json["message"]
