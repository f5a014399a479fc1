"""Client and AsyncClient on several real memflask servers (waitress, loopback): each key
on one server (memflask.placement), calls on many keys fanned out, and a server that stops
answering set aside (memflask.sharding)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from typing import Iterator

import pytest

from memflask import create_app
from memflask.aio import AsyncClient
from memflask.client import Client, MemflaskConnectionError, MemflaskServerError, MemflaskTimeout
from memflask.placement import server_for
from tests.harness.servers import LiveServer

KEYS = [f"key:{number}" for number in range(3000)]


def started(count: int, stack: contextlib.ExitStack) -> list[LiveServer]:
    return [
        stack.enter_context(LiveServer(create_app({"APP_ENV": "production"}))) for _ in range(count)
    ]


def url(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    with contextlib.ExitStack() as stack:
        yield started(4, stack)


def key_count(server: LiveServer) -> int:
    with Client(url(server)) as alone:
        return alone.stats()["keyCount"]


def fill(cache: Client, keys: list[str]) -> None:
    for start in range(0, len(keys), 500):  # /batch holds 1,000 commands at most
        assert cache.set_many({key: key.upper() for key in keys[start : start + 500]}) == []


def test_keys_spread_and_a_fourth_server_takes_at_most_35_percent(servers):
    three = [url(server) for server in servers[:3]]
    with Client(three) as cache:
        fill(cache, KEYS)
        counts = [key_count(server) for server in servers[:3]]
        assert sum(counts) == len(KEYS)
        assert min(counts) >= 0.2 * len(KEYS)
        assert counts == [sum(server_for(k, three) == u for k in KEYS) for u in three]
    with Client([*three, url(servers[3])]) as four:
        found = four.get_many(KEYS)
    moved = len(KEYS) - len(found)  # the fourth server's keys: not there yet
    assert 0 < moved <= 0.35 * len(KEYS)
    assert all(value == key.upper() for key, value in found.items())


def test_calls_on_many_keys_answer_in_the_callers_order(servers):
    with Client(",".join(url(server) for server in servers)) as cache:
        keys = list(reversed(KEYS[:400]))
        fill(cache, keys[::2])
        found = cache.get_many(keys)
        assert list(found) == keys[::2]
        commands = [{"verb": "get", "key": key} for key in keys[:50]]
        results = cache.batch(commands)
        assert [result.get("value") for result in results] == [
            key.upper() if index % 2 == 0 else None for index, key in enumerate(keys[:50])
        ]
        with pytest.raises(ValueError, match="without a key"):
            cache.batch([{"verb": "stats"}, {"verb": "get", "key": "k"}])
        assert cache.delete_many(keys) is True
        assert cache.get_many(keys) == {}
        assert cache.delete_many([]) is True


def test_every_server_answers_flush_stats_prefix_deletion_and_scans(servers):
    with Client([url(server) for server in servers]) as cache:
        fill(cache, KEYS[:1000])
        cache.set_many({f"other:{number}": "x" for number in range(100)})
        stats = cache.stats()
        assert stats["keyCount"] == 1100
        assert sorted(stats["servers"]) == sorted(url(server) for server in servers)
        assert sum(each["keyCount"] for each in stats["servers"].values()) == 1100
        assert sorted(cache.iter_keys("other:", limit=7)) == sorted(
            f"other:{number}" for number in range(100)
        )
        assert cache.delete_prefix("other:") == 100
        assert cache.flush_all() is True
        assert [key_count(server) for server in servers] == [0, 0, 0, 0]


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server that accepts connections and never answers; the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(socket.timeout):
                taken.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", taken
    finally:
        stop.set()
        thread.join(timeout=10)
        for connection in taken:
            connection.close()
        listener.close()


def test_a_server_that_stops_answering_is_set_aside_and_its_keys_raise(servers):
    with silent_server() as (dead, taken):
        urls = [url(server) for server in servers[:3]] + [dead]
        with Client(urls, timeout=0.5, dead_after=2, dead_timeout=60) as cache:
            dead_keys = [key for key in KEYS if server_for(key, urls) == dead][:5]
            live_keys = [key for key in KEYS if server_for(key, urls) != dead][:200]
            fill(cache, live_keys)
            for key in dead_keys[:2]:  # two calls time out: the server is set aside
                with pytest.raises(MemflaskTimeout):
                    cache.get(key)
            connections = len(taken)
            for key in dead_keys[2:]:
                with pytest.raises(MemflaskConnectionError) as refused:
                    cache.get(key)
                assert refused.value.code == "server_unavailable"
            assert all(cache.get(key) == key.upper() for key in live_keys)
            with pytest.raises(MemflaskConnectionError):
                cache.get_many(live_keys + dead_keys)
            assert len(taken) == connections  # not asked again while set aside


def test_ignoring_unavailable_servers_reads_misses_and_drops_writes(servers):
    with contextlib.ExitStack() as stack:
        gone = stack.enter_context(LiveServer(create_app({"APP_ENV": "production"})))
        urls = [url(server) for server in servers[:2]] + [url(gone)]
    # `gone` stopped: its port refuses connections.
    with Client(urls, timeout=2, ignore_unavailable=True) as cache:
        gone_keys = [key for key in KEYS if server_for(key, urls) == urls[2]][:20]
        live_keys = [key for key in KEYS if server_for(key, urls) != urls[2]][:20]
        fill(cache, live_keys)
        assert cache.set(gone_keys[0], "v") is False
        assert cache.get(gone_keys[0], default="miss") == "miss"
        assert cache.incr(gone_keys[1]) is None
        assert cache.get_many(live_keys + gone_keys) == {key: key.upper() for key in live_keys}
        assert sorted(cache.set_many({key: "v" for key in live_keys + gone_keys[:3]})) == sorted(
            gone_keys[:3]
        )
        assert cache.stats()["servers"][urls[2]] is None
        assert cache.delete_many(live_keys + gone_keys[:3]) is False  # a server was skipped
        assert cache.get_many(live_keys) == {}


def test_remapping_puts_an_unavailable_servers_keys_on_the_others(servers):
    with contextlib.ExitStack() as stack:
        gone = stack.enter_context(LiveServer(create_app({"APP_ENV": "production"})))
        urls = [url(server) for server in servers[:2]] + [url(gone)]
    with Client(urls, timeout=2, dead_after=1, remap_dead=True) as cache:
        key = next(key for key in KEYS if server_for(key, urls) == urls[2])
        with pytest.raises(MemflaskConnectionError):
            cache.set(key, "v")  # the failure that sets the server aside
        assert cache.set(key, "v") is True  # now on one of the others
        assert cache.get(key) == "v"


def test_a_server_back_after_the_retry_interval_is_used_again(servers):
    app = create_app({"APP_ENV": "production"})
    with LiveServer(app) as first_life:
        port = first_life.port
    urls = [url(server) for server in servers[:2]] + [f"http://127.0.0.1:{port}"]
    key = next(key for key in KEYS if server_for(key, urls) == urls[2])
    with Client(urls, timeout=2, dead_after=1, dead_timeout=0.5) as cache:
        with pytest.raises(MemflaskConnectionError):
            cache.get(key)
        with pytest.raises(MemflaskConnectionError) as refused:
            cache.get(key)
        assert refused.value.code == "server_unavailable"
        with LiveServer(app, port=port):
            time.sleep(0.6)  # the retry interval is over
            assert cache.set(key, "back") is True
            assert cache.get(key) == "back"


def test_one_server_is_never_set_aside(servers):
    with contextlib.ExitStack() as stack:
        gone = stack.enter_context(LiveServer(create_app({"APP_ENV": "production"})))
    with Client(url(gone), timeout=2, dead_after=1) as cache:
        for _ in range(3):
            with pytest.raises(MemflaskConnectionError) as refused:
                cache.get("k")
            assert refused.value.code == "connection_error"


def test_bad_server_lists_are_refused():
    for urls in ([], "", " , ", ["http://a:1", "http://a:1/"]):
        with pytest.raises(ValueError):
            Client(urls)
    with pytest.raises(TypeError):
        Client(["http://a:1", 2])


def test_the_async_client_spreads_and_sets_aside_alike(servers):
    async def scenario() -> None:
        with silent_server() as (dead, taken):
            urls = [url(server) for server in servers[:3]] + [dead]
            async with AsyncClient(urls, timeout=0.5, dead_after=1) as cache:
                live_keys = [key for key in KEYS if server_for(key, urls) != dead][:300]
                assert await cache.set_many({key: key.upper() for key in live_keys}) == []
                assert await cache.get_many(list(reversed(live_keys))) == {
                    key: key.upper() for key in reversed(live_keys)
                }
                dead_key = next(key for key in KEYS if server_for(key, urls) == dead)
                with pytest.raises(MemflaskTimeout):
                    await cache.get(dead_key)
                connections = len(taken)
                with pytest.raises(MemflaskConnectionError) as refused:
                    await cache.get(dead_key)
                assert refused.value.code == "server_unavailable"
                assert len(taken) == connections
                with pytest.raises(MemflaskConnectionError):
                    await cache.stats()  # every server's, and one is set aside

    asyncio.run(scenario())


@contextlib.contextmanager
def stats_server(answer: bytes) -> Iterator[str]:
    """A server on loopback that answers every request 200 with `answer` as JSON."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "answer",
    [b'{"keyCount": "many"}', b'{"hits": 1.5}', b'{"commands": {"get": "x"}}', b"[1, 2]"],
    ids=["text-count", "float-count", "text-verb-count", "not-an-object"],
)
def test_summed_stats_refuse_a_server_whose_counts_are_not_integers(servers, answer):
    with stats_server(answer) as odd:
        cache = Client([url(servers[0]), odd])
        with cache, pytest.raises(MemflaskServerError, match="not integers"):
            cache.stats()


def test_summed_stats_take_a_server_that_lacks_newer_counts(servers):
    with stats_server(b'{"keyCount": 2, "commands": {"get": 1}}') as older:
        cache = Client([url(servers[0]), older])
        with cache:
            stats = cache.stats()
    assert stats["keyCount"] == 2 + key_count(servers[0])
    assert "leases" not in stats  # summed only where every server has it
