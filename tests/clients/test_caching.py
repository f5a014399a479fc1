"""Flask-Caching, through its own API, keeping a Flask app's cache in a real memflask server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import threading
import time
from importlib.metadata import version

import pytest
from flask import Flask
from flask_caching import Cache

from memflask import create_app
from memflask.caching import CachelibMemflaskCache, MemflaskCache
from memflask.client import Client
from memflask.placement import server_for
from tests.harness.servers import LiveServer

FLASK_CACHING_VERSION = tuple(int(part) for part in version("flask-caching").split(".")[:2])


@pytest.fixture
def cached_app(live_server):
    app = Flask("cached")
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "memflask.caching.MemflaskCache",
            "CACHE_MEMFLASK_URL": f"http://127.0.0.1:{live_server.port}",
            "CACHE_KEY_PREFIX": "app:",
            "CACHE_DEFAULT_TIMEOUT": 60,
        },
    )
    return app, cache


def test_the_backend_is_memflask(cached_app):
    app, cache = cached_app
    with app.app_context():
        assert isinstance(cache.cache, MemflaskCache)


def test_get_set_add_delete_with_values_of_every_kind(cached_app, live_server):
    app, cache = cached_app
    with app.app_context():
        for value in ["text é", 42, 3.5, True, None, [1, "two"], {"a": (1, 2)}, b"\x00\xff"]:
            assert cache.set("k", value)
            assert cache.get("k") == value
            assert type(cache.get("k")) is type(value)
        assert cache.add("k", "other") is False
        assert cache.add("fresh", "value") is True
        assert cache.delete("fresh")
        assert cache.get("fresh") is None
    # Keys carry the prefix on the server.
    assert live_server.request("GET", "/get?key=app:k")[0] == 200


def test_timeouts(cached_app, clock, live_server):
    app, cache = cached_app
    with app.app_context():
        cache.set("default", 1)
        cache.set("short", 1, timeout=5)
        cache.set("forever", 1, timeout=0)
        clock.tick(5)
        assert cache.get("short") is None
        assert cache.get("default") == 1
        clock.tick(55)
        assert cache.get("default") is None
        assert cache.get("forever") == 1


def test_inc_and_dec_run_on_the_server(cached_app):
    app, cache = cached_app
    with app.app_context():
        # Flask-Caching's Cache forwards inc/dec to no one: they live on the backend.
        backend = cache.cache
        assert backend.inc("hits") == 1
        assert backend.inc("hits", 5) == 6
        assert backend.dec("hits", 2) == 4
        assert backend.dec("fresh") == -1
        assert cache.get("hits") == 4


def test_get_many_set_many_clear(cached_app):
    app, cache = cached_app
    with app.app_context():
        assert sorted(cache.set_many({"a": 1, "b": [2]})) == ["a", "b"]
        assert cache.get_many("a", "b", "c") == [1, [2], None]
        assert cache.get_dict("a", "c") == {"a": 1, "c": None}
        assert cache.clear()
        assert cache.get("a") is None


def test_cached_view_and_memoized_function(cached_app):
    app, cache = cached_app
    calls = []

    @app.route("/slow")
    @cache.cached(timeout=30)
    def slow():
        calls.append("view")
        return f"computed {len(calls)}"

    @cache.memoize(timeout=30)
    def square(number):
        calls.append(number)
        return number * number

    client = app.test_client()
    assert client.get("/slow").data == b"computed 1"
    assert client.get("/slow").data == b"computed 1"
    with app.app_context():
        assert square(4) == 16
        assert square(4) == 16
        assert square(5) == 25
    assert calls == ["view", 4, 5]


def test_the_cachelib_cache_works_without_flask_caching(live_server):
    # The same cache for cachelib alone: MemflaskCache is this class on Flask-Caching's base.
    cache = CachelibMemflaskCache(f"http://127.0.0.1:{live_server.port}", key_prefix="lib:")
    assert issubclass(MemflaskCache, CachelibMemflaskCache)
    assert cache.set("k", [1, "two"], timeout=60)
    assert cache.get("k") == [1, "two"]
    assert cache.inc("hits", 3) == 3
    assert cache.get_dict("k", "absent") == {"k": [1, "two"], "absent": None}
    assert live_server.request("GET", "/get?key=lib:k")[0] == 200


def make_cached_app(live_server, **config):
    app = Flask("cached")
    defaults = {
        "CACHE_TYPE": "memflask.caching.MemflaskCache",
        "CACHE_MEMFLASK_URL": f"http://127.0.0.1:{live_server.port}",
        "CACHE_KEY_PREFIX": "app:",
        "CACHE_DEFAULT_TIMEOUT": 60,
    }
    return app, Cache(app, config={**defaults, **config})


def test_a_cached_view_on_a_long_path_is_cached_without_an_error(cached_app, caplog):
    # Flask-Caching builds the key from the path: over memflask's 250 bytes here.
    app, cache = cached_app
    calls = []

    @app.route("/report/<path:rest>")
    @cache.cached(timeout=30)
    def report(rest):
        calls.append(rest)
        return f"computed {len(calls)}"

    client = app.test_client()
    long_path = "/report/" + "section/" * 40
    assert client.get(long_path).data == b"computed 1"
    assert client.get(long_path).data == b"computed 1"
    assert client.get(long_path + "other").data == b"computed 2"
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_long_keys_are_hashed_to_a_stable_short_key_under_the_prefix(cached_app, live_server):
    app, cache = cached_app
    long_key = "é" * 200  # 400 UTF-8 bytes
    with app.app_context():
        assert cache.set(long_key, [1, 2])
        assert cache.get(long_key) == [1, 2]
        assert cache.has(long_key)
        assert cache.get_many(long_key, "absent") == [[1, 2], None]
        assert cache.cache.inc(long_key + "n") == 1
        assert cache.delete(long_key)
        assert cache.get(long_key) is None
        assert cache.set("x" * 246, "fits")  # 250 bytes with "app:": kept as it is
    digest = hashlib.sha256((long_key + "n").encode()).hexdigest()
    assert live_server.request("GET", f"/get?key=app:sha256:{digest}")[2] == b"1"
    assert live_server.request("GET", "/get?key=app:" + "x" * 246)[0] == 200


def test_a_prefix_too_long_for_a_hashed_key_is_refused_at_once():
    with pytest.raises(ValueError, match="key_prefix"):
        CachelibMemflaskCache(key_prefix="p" * 200)


@pytest.mark.parametrize("settings", [{"CACHE_KEY_PREFIX": None}, {"CACHE_KEY_PREFIX": ""}])
def test_no_key_prefix(live_server, settings):
    app, cache = make_cached_app(live_server, **settings)
    with app.app_context():
        assert cache.set("k", "v")
        assert cache.get("k") == "v"
    assert live_server.request("GET", "/get?key=k")[0] == 200
    direct = MemflaskCache(f"http://127.0.0.1:{live_server.port}", key_prefix=None)
    assert direct.get("k") == "v"


def test_delete_answers_whether_the_key_existed(cached_app):
    app, cache = cached_app
    with app.app_context():
        assert cache.delete("absent") is False
        cache.set("present", 1)
        assert cache.delete("present") is True
        assert cache.delete("present") is False
        cache.set("a", 1)
        # delete_many: a key that was not there counts as deleted, as in cachelib.
        assert cache.delete_many("a", "absent") == ["a", "absent"]
        assert cache.get("a") is None


def test_clear_removes_only_this_apps_prefix(cached_app, live_server):
    app, cache = cached_app
    other_app, other_cache = make_cached_app(live_server, CACHE_KEY_PREFIX="other:")
    with other_app.app_context():
        other_cache.set("kept", 1)
    live_server.request("GET", "/set?key=bare&value=v")
    with app.app_context():
        cache.set_many({"a": 1, "b": 2})
        assert cache.clear() is True
        assert cache.get_many("a", "b") == [None, None]
    with other_app.app_context():
        assert other_cache.get("kept") == 1
    assert live_server.request("GET", "/get?key=bare")[0] == 200


def test_clear_without_a_prefix_flushes_the_server(live_server):
    app, cache = make_cached_app(live_server, CACHE_KEY_PREFIX="")
    live_server.request("GET", "/set?key=other:k&value=v")
    with app.app_context():
        cache.set("k", 1)
        assert cache.clear() is True
    assert live_server.request("GET", "/get?key=other:k")[0] == 404


@pytest.mark.skipif(
    FLASK_CACHING_VERSION < (2, 5), reason="CACHE_SERIALIZER arrived in Flask-Caching 2.5"
)
def test_cache_serializer_json_stores_json_text(live_server):
    from cachelib.serializers import JSONSerializer  # cachelib 0.17, with Flask-Caching 2.5

    app, cache = make_cached_app(live_server, CACHE_SERIALIZER=JSONSerializer)
    with app.app_context():
        assert isinstance(cache.cache.serializer, JSONSerializer)
        assert cache.set("doc", {"a": [1, "two"]})
        assert cache.get("doc") == {"a": [1, "two"]}
        assert cache.set("hits", 5)
        assert cache.cache.inc("hits") == 6  # integers stay plain text: inc on the server
        assert cache.get("hits") == 6
        assert cache.set("raw", b"bytes") is False  # JSON has no bytes: nothing stored
        assert cache.get("raw") is None
    assert live_server.request("GET", "/get?key=app:doc")[2] == b'{"a": [1, "two"]}'


class JsonSerializer:
    """JSON, as cachelib's JSONSerializer (which cachelib 0.14 does not have)."""

    def dumps(self, value):
        return json.dumps(value).encode()

    def loads(self, data):
        return json.loads(data)


def test_the_serializer_option_works_on_every_flask_caching(live_server):
    # CACHE_OPTIONS reach the backend's constructor on Flask-Caching 2.3 and 2.4 too.
    app, cache = make_cached_app(live_server, CACHE_OPTIONS={"serializer": JsonSerializer()})
    with app.app_context():
        assert cache.set("doc", ["json"])
        assert cache.get("doc") == ["json"]
    assert live_server.request("GET", "/get?key=app:doc")[2] == b'["json"]'


class TextSerializer:
    """Stores str values as they are: text that may start with the base64 marker."""

    def dumps(self, value):
        return value.encode()

    def loads(self, data):
        return data.decode()


def test_values_that_are_not_text_travel_in_base64_and_text_as_it_is(live_server):
    cache = CachelibMemflaskCache(f"http://127.0.0.1:{live_server.port}", key_prefix="lib:")
    cache.set("pickled", {"a": 1})
    assert live_server.request("GET", "/get?key=lib:pickled")[2].startswith(b"b64:")
    cache.serializer = TextSerializer()
    for text in ["plain", "b64:looks like base64 but is text", "b64:aGk="]:
        assert cache.set("text", text)
        assert cache.get("text") == text
    assert cache.set("text", "plain")
    assert live_server.request("GET", "/get?key=lib:text")[2] == b"plain"


def test_delete_many_raises_on_a_refused_key_only_when_told_to():
    # Nothing listens on this port: every delete fails.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cache = CachelibMemflaskCache(url, timeout=1)
    cache.ignore_delete_many_errors = True
    assert cache.delete_many("a", "b") == []
    cache.ignore_delete_many_errors = False
    with pytest.raises(RuntimeError, match="Failed to delete keys"):
        cache.delete_many("a", "b")


def test_cache_memflask_servers_spreads_the_keys_and_clears_every_server(live_server, clock):
    with contextlib.ExitStack() as stack:
        others = [
            stack.enter_context(LiveServer(create_app({"APP_ENV": "production", "CLOCK": clock})))
            for _ in range(2)
        ]
        urls = [f"http://127.0.0.1:{server.port}" for server in (live_server, *others)]
        app = Flask("sharded")
        cache = Cache(
            app,
            config={
                "CACHE_TYPE": "memflask.caching.MemflaskCache",
                "CACHE_MEMFLASK_SERVERS": urls,
                "CACHE_KEY_PREFIX": "app:",
                "CACHE_OPTIONS": {"dead_timeout": 5},
            },
        )
        with app.app_context():
            values = {f"k{number}": number for number in range(60)}
            assert cache.set_many(values)
            assert cache.get_many(*values) == list(values.values())
            held = [Client(url).stats()["keyCount"] for url in urls]
            assert sum(held) == 60 and min(held) > 0
            assert all(
                Client(server_for(f"app:{key}", urls)).get(f"app:{key}") == str(value)
                for key, value in values.items()
            )
            assert cache.clear()
            assert [Client(url).stats()["keyCount"] for url in urls] == [0, 0, 0]


# -- leases: CACHE_MEMFLASK_LEASE --------------------------------------------------------


def test_with_a_lease_a_memoized_function_missed_by_twenty_threads_runs_once(live_server):
    app, cache = make_cached_app(live_server, CACHE_MEMFLASK_LEASE=30)
    calls = []

    @cache.memoize(timeout=60)
    def report(number):
        calls.append(number)
        time.sleep(0.3)
        return {"total": number * 2}

    with app.app_context():
        # memoize keeps a version per function, made by its first call: by each caller of
        # a first call at once (Flask-Caching's own race, before any value is cached).
        report(0)
    calls.clear()
    start = threading.Barrier(20)
    results = []

    def caller():
        start.wait(timeout=10)
        with app.app_context():
            results.append(report(21))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert calls == [21]
    assert results == [{"total": 42}] * 20


def test_with_a_lease_a_cached_view_missed_by_ten_threads_renders_once(live_server):
    app, cache = make_cached_app(live_server, CACHE_MEMFLASK_LEASE=30)
    calls = []

    @app.route("/report")
    @cache.cached(timeout=60)
    def report():
        calls.append(1)
        time.sleep(0.3)
        return "rendered"

    start = threading.Barrier(10)
    bodies = []

    def caller():
        start.wait(timeout=10)
        bodies.append(app.test_client().get("/report").data)

    threads = [threading.Thread(target=caller) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert calls == [1]
    assert bodies == [b"rendered"] * 10


def test_a_leased_set_after_another_write_stores_nothing(live_server):
    cache = CachelibMemflaskCache(f"http://127.0.0.1:{live_server.port}", lease=30)
    assert cache.get("k") is None  # a miss: this thread holds the lease
    other = CachelibMemflaskCache(f"http://127.0.0.1:{live_server.port}")
    assert other.set("k", "theirs") is True  # ends the lease
    assert cache.set("k", "mine") is False
    assert cache.get("k") == "theirs"
    assert cache.set("k", "plain") is True  # no lease held: a plain set


@pytest.mark.parametrize("lease", [0, 3601, "30", 2.5])
def test_a_bad_lease_option_is_refused(live_server, lease):
    with pytest.raises(ValueError, match="lease"):
        CachelibMemflaskCache(f"http://127.0.0.1:{live_server.port}", lease=lease)
