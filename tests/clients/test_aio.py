"""memflask.aio.AsyncClient against a real memflask server on waitress.

Each test runs its coroutine with asyncio.run: no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from memflask import create_app
from memflask.aio import AsyncClient
from memflask.client import (
    Client,
    MemflaskAuthenticationError,
    MemflaskConnectionError,
    MemflaskError,
    MemflaskForbiddenError,
    MemflaskPreconditionFailed,
    MemflaskServerError,
    MemflaskValidationError,
    MemflaskValueTooLarge,
)
from tests.harness.servers import LiveServer

CONCURRENT_INCREMENTS = 500


@pytest.fixture
def url(live_server) -> str:
    return f"http://127.0.0.1:{live_server.port}"


def run(coroutine):
    return asyncio.run(coroutine)


def test_get_set_delete(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.get("k") is None
            assert await cache.get("k", default="fallback") == "fallback"
            assert await cache.set("k", "value é") is True
            assert await cache.get("k") == "value é"
            assert await cache.delete("k") is True
            assert await cache.delete("k") is False  # it was not there
            assert await cache.get("k") is None

    run(scenario())


def test_expire_is_seconds_from_now(url, clock):
    async def scenario():
        async with AsyncClient(url) as cache:
            await cache.set("k", "v", expire=10)
            assert await cache.ttl("k") == 10
            clock.tick(10)
            assert await cache.get("k") is None
            await cache.set("forever", "v")
            assert await cache.ttl("forever") is None
            with pytest.raises(KeyError):
                await cache.ttl("absent")

    run(scenario())


def test_add_replace_append_prepend(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.replace("k", "x") is False
            assert await cache.add("k", "mid") is True
            assert await cache.add("k", "other") is False
            assert await cache.append("k", ">") is True
            assert await cache.prepend("k", "<") is True
            assert await cache.get("k") == "<mid>"
            assert await cache.replace("k", "new") is True
            assert await cache.get("k") == "new"

    run(scenario())


def test_cas(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.cas("k", "first", compare="anything") is True  # absent: set
            assert await cache.cas("k", "second", compare="wrong") is False
            assert await cache.get("k") == "first"
            assert await cache.checkandset("k", "second", compare="first") is True
            assert await cache.get("k") == "second"
            # A 400 other than a mismatch is bad input, not a False.
            with pytest.raises(MemflaskValidationError) as caught:
                await cache.cas("", "v", compare="x")
            assert caught.value.code == "invalid_key"

    run(scenario())


def test_incr_and_decr_answer_the_new_value(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.incr("n") == 1
            assert await cache.incr("n", 41) == 42
            assert await cache.decr("n", 2) == 40
            await cache.set("word", "abc")
            with pytest.raises(MemflaskValidationError) as caught:
                await cache.incr("word")
            assert caught.value.code == "not_an_integer"
            await cache.set("big", str(2**63 - 1))
            with pytest.raises(MemflaskValidationError) as caught:
                await cache.incr("big")
            assert caught.value.code == "overflow"

    run(scenario())


def test_touch(url, clock):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.touch("k", expire=5) is False
            await cache.set("k", "v", expire=5)
            assert await cache.touch("k", expire=100) is True
            clock.tick(50)
            assert await cache.get("k") == "v"

    run(scenario())


def test_get_many_and_set_many(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            assert await cache.set_many({"a": "1", "b": 2, "": "empty key fails"}) == [""]
            assert await cache.set_many({}) == []
            assert await cache.get_many(["a", "b", "c"]) == {"a": "1", "b": "2"}
            assert await cache.get_many(iter(["a"])) == {"a": "1"}
            assert await cache.get_many([]) == {}

    run(scenario())


def test_stats_and_flush_all(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            await cache.set("a", "1")
            assert (await cache.stats())["keyCount"] == 1
            assert await cache.flush_all() is True
            assert (await cache.stats())["keyCount"] == 0

    run(scenario())


def test_delete_prefix_scan_and_iter_keys(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            await cache.set_many({"app1:a": "1", "app1:b": "2", "app2:a": "3"})
            assert sorted([key async for key in cache.iter_keys("app1:", limit=1)]) == [
                "app1:a",
                "app1:b",
            ]
            # A page examines at most 10 x limit keys: a shared Redis may take more pages.
            keys, cursor = await cache.scan("app", limit=1000)
            for _ in range(1000):
                if not cursor:
                    break
                more, cursor = await cache.scan("app", cursor=cursor, limit=1000)
                keys += more
            assert sorted(keys) == ["app1:a", "app1:b", "app2:a"] and cursor == ""
            assert await cache.delete_prefix("app1:") == 2
            assert [key async for key in cache.iter_keys()] == ["app2:a"]

    run(scenario())


def test_delete_prefix_refuses_an_empty_prefix(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            await cache.set("k", "v")
            with pytest.raises(ValueError):
                await cache.delete_prefix("")
            assert await cache.get("k") == "v"

    run(scenario())


def test_concurrent_increments_through_one_client_lose_nothing(url, live_server):
    # Count the connections the server accepts: a pooled keep-alive client opens at most
    # max_connections for the whole burst (without keep-alive it would open 500).
    waitress = live_server.server.server
    accepted = []
    accept = waitress.handle_accept

    def counting_accept():
        accepted.append(1)
        accept()

    waitress.handle_accept = counting_accept

    async def scenario():
        async with AsyncClient(url, timeout=30, max_connections=10) as cache:
            results = await asyncio.gather(
                *(cache.incr("shared") for _ in range(CONCURRENT_INCREMENTS))
            )
            # Every answer is a distinct value: each increment saw the one before it.
            assert sorted(results) == list(range(1, CONCURRENT_INCREMENTS + 1))
            assert await cache.get("shared") == str(CONCURRENT_INCREMENTS)
            assert (await cache.stats())["commands"]["increment"] == CONCURRENT_INCREMENTS

    run(scenario())
    assert 1 <= len(accepted) <= 10


def test_concurrent_mixed_verbs_from_many_tasks(url):
    async def worker(cache: AsyncClient, number: int) -> None:
        key = f"task-{number}"
        assert await cache.add(key, "0") is True
        for step in range(1, 6):
            assert await cache.incr(key) == step
        await cache.append(key, "!")
        assert await cache.get(key) == "5!"
        assert await cache.cas(key, "done", compare="5!") is True

    async def scenario():
        async with AsyncClient(url, timeout=30) as cache:
            await asyncio.gather(*(worker(cache, number) for number in range(50)))
            keys = [f"task-{number}" for number in range(50)]
            assert await cache.get_many(keys) == dict.fromkeys(keys, "done")

    run(scenario())


def test_typed_errors(clock):
    app = create_app(
        {"APP_ENV": "production", "TOKEN": "right", "MAX_VALUE_BYTES": 10, "CLOCK": clock}
    )

    async def scenario(url: str):
        async with AsyncClient(url, token="wrong") as intruder:
            with pytest.raises(MemflaskAuthenticationError) as caught:
                await intruder.get("k")
            assert (caught.value.status, caught.value.code) == (401, "unauthorized")
        async with AsyncClient(url, token="right") as cache:
            with pytest.raises(MemflaskValueTooLarge):
                await cache.set("k", "x" * 11)
            with pytest.raises(MemflaskValidationError) as caught:
                await cache.get("")
            assert (caught.value.status, caught.value.code) == (400, "invalid_key")
            with pytest.raises(MemflaskValidationError):
                await cache.set("k", "v", expire="soon")
            assert await cache.set("k", "ok") and await cache.get("k") == "ok"
            # 404 on a verb that is not served: the base class, with the server's code.
            with pytest.raises(MemflaskError) as caught:
                await cache._call("nosuchverb", {})
            assert (caught.value.status, caught.value.code) == (404, "unknown_verb")

    with LiveServer(app) as server:
        run(scenario(f"http://127.0.0.1:{server.port}"))


def test_forbidden_and_precondition_failed_are_typed(url):
    async def scenario():
        async with AsyncClient(url) as cache:
            # The client sends no conditions or Host of its own: reach the server as a
            # hostile page or a stale writer would, through the same wire code.
            cache._http.headers["Host"] = "evil.example"
            with pytest.raises(MemflaskForbiddenError):
                await cache.get("k")
            del cache._http.headers["Host"]
            await cache.set("k", "v")
            cache._http.headers["If-Match"] = '"999"'
            with pytest.raises(MemflaskPreconditionFailed):
                await cache.set("k", "new")
            del cache._http.headers["If-Match"]
            assert await cache.get("k") == "v"

    run(scenario())


def test_a_5xx_is_a_server_error(url, live_server):
    live_server.server.server.application = failing_app

    async def scenario():
        async with AsyncClient(url) as cache:
            with pytest.raises(MemflaskServerError) as caught:
                await cache.get("k")
            assert caught.value.status == 503
            assert caught.value.code == "unreadable_answer"

    run(scenario())


def failing_app(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"down for maintenance"]


def test_connection_error_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario():
        async with AsyncClient(f"http://127.0.0.1:{port}", timeout=2) as cache:
            with pytest.raises(MemflaskConnectionError) as caught:
                await cache.get("k")
            assert caught.value.status == 0

    run(scenario())


def test_a_slow_server_is_a_connection_error():
    # A listening socket that never answers: the timeout turns into an error, not a hang.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]

        async def scenario():
            async with AsyncClient(f"http://127.0.0.1:{port}", timeout=0.5) as cache:
                with pytest.raises(MemflaskConnectionError):
                    await cache.get("k")

        run(scenario())


def test_the_same_methods_as_the_sync_client():
    def public_names(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public_names(AsyncClient) == public_names(Client)


def test_both_clients_offer_the_same_verbs():
    """Described once (memflask.protocol.Verbs): a verb added to one client is in both."""

    def public(kind: type) -> set[str]:
        return {name for name in dir(kind) if not name.startswith("_")}

    assert public(AsyncClient) == public(Client)
    assert {"get", "cas", "checkandset", "batch", "iter_keys", "close"} <= public(Client)
