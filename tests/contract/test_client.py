"""memflask.client.Client against a real memflask server on waitress."""

from __future__ import annotations

import socket
import threading

import pytest

from memflask import create_app
from memflask.client import (
    Client,
    MemflaskAuthenticationError,
    MemflaskConnectionError,
    MemflaskValidationError,
    MemflaskValueTooLarge,
)
from tests.harness.servers import LiveServer


@pytest.fixture
def cache(live_server):
    with Client(f"http://127.0.0.1:{live_server.port}") as client:
        yield client


def test_get_set_delete(cache):
    assert cache.get("k") is None
    assert cache.get("k", default="fallback") == "fallback"
    assert cache.set("k", "value é") is True
    assert cache.get("k") == "value é"
    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False  # it was not there


def test_expire_is_seconds_from_now(cache, clock):
    cache.set("k", "v", expire=10)
    assert cache.ttl("k") == 10
    clock.tick(10)
    assert cache.get("k") is None
    cache.set("forever", "v")
    assert cache.ttl("forever") is None
    with pytest.raises(KeyError):
        cache.ttl("absent")


def test_add_replace_append_prepend(cache):
    assert cache.replace("k", "x") is False
    assert cache.add("k", "mid") is True
    assert cache.add("k", "other") is False
    cache.append("k", ">")
    cache.prepend("k", "<")
    assert cache.get("k") == "<mid>"
    assert cache.replace("k", "new") is True
    assert cache.get("k") == "new"


def test_cas(cache):
    assert cache.cas("k", "first", compare="anything") is True  # absent: set
    assert cache.cas("k", "second", compare="wrong") is False
    assert cache.get("k") == "first"
    assert cache.checkandset("k", "second", compare="first") is True
    assert cache.get("k") == "second"


def test_incr_and_decr_answer_the_new_value(cache):
    assert cache.incr("n") == 1
    assert cache.incr("n", 41) == 42
    assert cache.decr("n", 2) == 40
    cache.set("word", "abc")
    with pytest.raises(MemflaskValidationError) as caught:
        cache.incr("word")
    assert caught.value.code == "not_an_integer"


def test_touch(cache, clock):
    assert cache.touch("k", expire=5) is False
    cache.set("k", "v", expire=5)
    assert cache.touch("k", expire=100) is True
    clock.tick(50)
    assert cache.get("k") == "v"


def test_get_many_and_set_many(cache):
    assert cache.set_many({"a": "1", "b": 2, "": "empty key fails"}) == [""]
    assert cache.get_many(["a", "b", "c"]) == {"a": "1", "b": "2"}
    assert cache.get_many([]) == {}


def test_stats_and_flush_all(cache):
    cache.set("a", "1")
    assert cache.stats()["keyCount"] == 1
    assert cache.flush_all() is True
    assert cache.stats()["keyCount"] == 0


def test_typed_errors(clock):
    app = create_app(
        {"APP_ENV": "production", "TOKEN": "right", "MAX_VALUE_BYTES": 10, "CLOCK": clock}
    )
    with LiveServer(app) as server:
        url = f"http://127.0.0.1:{server.port}"
        with Client(url, token="wrong") as intruder, pytest.raises(MemflaskAuthenticationError):
            intruder.get("k")
        with Client(url, token="right") as client:
            with pytest.raises(MemflaskValueTooLarge):
                client.set("k", "x" * 11)
            with pytest.raises(MemflaskValidationError):
                client.get("")
            assert client.set("k", "ok") and client.get("k") == "ok"


def test_connection_error_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        Client(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(MemflaskConnectionError),
    ):
        client.get("k")


def test_one_client_shared_by_threads_keeps_connections_alive(cache, live_server):
    def work():
        for _ in range(50):
            cache.incr("shared")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert cache.get("shared") == "200"
    assert cache.stats()["commands"]["increment"] == 200


def test_delete_prefix_and_iter_keys(cache):
    cache.set_many({"app1:a": "1", "app1:b": "2", "app2:a": "3"})
    assert sorted(cache.iter_keys("app1:", limit=1)) == ["app1:a", "app1:b"]
    # A page examines at most 10 x limit keys (README, Security): on a Redis shared with
    # other tests' keys the scan may take more than one page, as Redis's SCAN does.
    keys, cursor = cache.scan("app", limit=1000)
    for _ in range(1000):
        if not cursor:
            break
        more, cursor = cache.scan("app", cursor=cursor, limit=1000)
        keys += more
    assert sorted(keys) == ["app1:a", "app1:b", "app2:a"] and cursor == ""
    assert cache.delete_prefix("app1:") == 2
    assert sorted(cache.iter_keys()) == ["app2:a"]
    with pytest.raises(ValueError):
        cache.delete_prefix("")
