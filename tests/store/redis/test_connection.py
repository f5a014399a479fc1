"""memflask/store/redis/connection.py: the circuit breaker, the guard around each store
method, and Redis TTLs (the connections themselves are in test_store.py and test_outages.py)."""

from __future__ import annotations

import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from memflask.store import StoreUnavailable
from memflask.store.redis.connection import Breaker, guarded, redis_ttl_ms
from memflask.store.redis.scripts import MAX_REDIS_TTL_MS


def test_a_closed_breaker_lets_every_call_through():
    breaker = Breaker(pause=60)
    for _ in range(3):
        breaker.enter()
        breaker.answered()


def test_after_a_failure_calls_fail_fast_then_one_probes():
    breaker = Breaker(pause=0.05)
    breaker.failed()
    with pytest.raises(StoreUnavailable):
        breaker.enter()
    time.sleep(0.06)
    breaker.enter()  # the probe
    with pytest.raises(StoreUnavailable):
        breaker.enter()  # the others, while it probes
    breaker.answered()
    breaker.enter()


class Flaky:
    """A store method that fails while `down`, behind the guard."""

    def __init__(self):
        self.breaker = Breaker(pause=60)
        self.down = False
        self.calls = 0

    @guarded
    def call(self) -> str:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        return "answered"


def test_the_guard_turns_an_unreachable_redis_into_a_fast_503():
    store = Flaky()
    assert store.call() == "answered"
    store.down = True
    with pytest.raises(StoreUnavailable, match="refused"):
        store.call()
    with pytest.raises(StoreUnavailable, match="not tried"):
        store.call()
    assert store.calls == 2  # the breaker kept the third call from Redis


def test_the_guard_lets_a_refusal_of_the_caller_through_and_keeps_the_breaker_closed():
    class Refusing(Flaky):
        @guarded
        def call(self) -> str:
            raise ValueError("the change function refused")

    store = Refusing()
    with pytest.raises(ValueError):
        store.call()
    store.breaker.enter()  # still closed


@pytest.mark.parametrize(
    ("expires_at", "ttl_ms"),
    [(None, None), (100.0, 1), (100.5, 500), (110.0, 10_000), (100.0 + 1e12, None)],
)
def test_redis_ttl_in_milliseconds_at_least_1_and_none_past_the_bound(expires_at, ttl_ms):
    assert redis_ttl_ms(expires_at, now=100.0) == ttl_ms


def test_the_longest_ttl_given_to_redis_is_the_bound():
    assert redis_ttl_ms(100.0 + MAX_REDIS_TTL_MS / 1000, now=100.0) == MAX_REDIS_TTL_MS
