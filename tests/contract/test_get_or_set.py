"""get_or_set under a lease (memflask.stampede) in both clients, against real servers on
every backend: many callers missing one key compute it once."""

from __future__ import annotations

import multiprocessing
import threading
import time

import anyio
import pytest

from memflask.aio import AsyncClient
from memflask.client import Client

CALLERS = 20
COMPUTE_SECONDS = 0.3


@pytest.fixture
def url(live_server) -> str:
    return f"http://127.0.0.1:{live_server.port}"


def test_twenty_threads_missing_one_key_compute_it_once(url):
    computed = []

    def compute():
        computed.append(threading.get_ident())
        time.sleep(COMPUTE_SECONDS)
        return "computed"

    start = threading.Barrier(CALLERS)
    results = []
    with Client(url, max_connections=CALLERS, timeout=10) as cache:

        def caller():
            start.wait(timeout=10)
            results.append(cache.get_or_set("cold", compute, expire=60))

        threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(computed) == 1
        assert results == ["computed"] * CALLERS
        assert cache.get("cold") == "computed"
        stats = cache.stats()
    assert stats["leases"] == 1
    assert stats["leaseFills"] == 1


def test_twenty_tasks_missing_one_key_compute_it_once(url):
    computed = []

    async def compute():
        computed.append(1)
        await anyio.sleep(COMPUTE_SECONDS)
        return "computed"

    async def main():
        results = []
        async with AsyncClient(url, max_connections=CALLERS, timeout=10) as cache:

            async def caller():
                results.append(await cache.get_or_set("cold", compute, expire=60))

            async with anyio.create_task_group() as group:
                for _ in range(CALLERS):
                    group.start_soon(caller)
        return results

    assert anyio.run(main) == ["computed"] * CALLERS
    assert len(computed) == 1


def _process_caller(url, computed, start, results):
    def compute():
        with computed.get_lock():
            computed.value += 1
        time.sleep(COMPUTE_SECONDS)
        return "computed"

    start.wait(timeout=30)
    with Client(url, timeout=10) as cache:
        results.put(cache.get_or_set("cold", compute, expire=60))


def test_four_processes_missing_one_key_compute_it_once(url):
    context = multiprocessing.get_context("spawn")
    computed = context.Value("i", 0)
    start = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(target=_process_caller, args=(url, computed, start, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert answers == ["computed"] * 4
    assert computed.value == 1


def test_a_hit_is_not_computed_and_a_value_default_is_stored(url):
    with Client(url) as cache:
        cache.set("warm", "stored")
        assert cache.get_or_set("warm", lambda: pytest.fail("computed on a hit")) == "stored"
        assert cache.get_or_set("plain", "given", expire=30) == "given"
        assert cache.get("plain") == "given"
        assert cache.ttl("plain") == 30


def test_invalidate_serves_the_stale_value_while_one_caller_refreshes(url):
    with Client(url) as cache:
        cache.set("k", "old")
        assert cache.invalidate("k") is True
        assert cache.get("k") is None
        refreshed = cache.get_or_set("k", lambda: "new", stale=60)
        assert refreshed == "new"
        assert cache.get("k") == "new"
        assert cache.invalidate("absent") is False


def test_a_caller_that_waits_gets_the_stale_value_at_once(url):
    with Client(url) as cache:
        cache.set("k", "old")
        cache.invalidate("k")
        holder = cache.batch([{"verb": "get", "key": "k", "lease": 30}])[0]
        assert holder["value"] == "old" and holder["lease"]
        # Another caller: the stale value, not a computation, while the holder refreshes.
        assert cache.get_or_set("k", lambda: pytest.fail("computed twice")) == "old"


def test_a_caller_computes_once_the_holder_s_lease_runs_out(url, clock):
    with Client(url) as cache:
        cache.batch([{"verb": "get", "key": "k", "lease": 1}])  # a holder that never writes
        waiter_result = []
        waiter = threading.Thread(
            target=lambda: waiter_result.append(cache.get_or_set("k", lambda: "mine"))
        )
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive()  # waiting for the holder
        clock.tick(1)  # the holder's lease runs out
        waiter.join(timeout=10)
        assert waiter_result == ["mine"]
