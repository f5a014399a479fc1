"""Flask-Caching, through its own API, keeping a Flask app's cache in a real memflask server."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_caching import Cache

from memflask.caching import CachelibMemflaskCache, MemflaskCache


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
