"""memflask.django.MemflaskCache as a Django cache, against a real memflask server.

Django is configured once, here, with settings.configure; each test points CACHES at its
live server with Django's own override_settings and reaches the backends through
django.core.cache.caches. The behaviours are those Django's cache test-suite checks for
its memcached backends (BaseCacheTests, BaseMemcachedTests), with memflask's clock
moved by hand where Django's tests sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import pickle
import threading
import time
import warnings
from typing import Iterator
from zlib import compress, decompress

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        USE_TZ=True,
        SECRET_KEY="tests only",
        ALLOWED_HOSTS=["testserver"],
        # Django's logging setup would change the process's logging for every test.
        LOGGING_CONFIG=None,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()

from django.core import signals  # after settings.configure
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning, InvalidCacheKey
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.views.decorators.cache import cache_page

from memflask import create_app
from memflask.caching import CachelibMemflaskCache
from memflask.client import (
    Client,
    MemflaskAuthenticationError,
    MemflaskValueTooLarge,
)
from memflask.django import MemflaskCache
from tests.harness.servers import LiveServer

BACKEND = "memflask.django.MemflaskCache"


def custom_key_func(key, key_prefix, version):
    """A key function of one's own, as in Django's cache tests."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def answer_42():
    return 42


class Picklable:
    def method(self):
        return 24


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()


def caches_setting(location: str, **params) -> dict:
    """Django's cache test aliases, all on one memflask server."""
    aliases = {
        "default": {},
        "prefix": {"KEY_PREFIX": "cacheprefix"},
        "v2": {"VERSION": 2},
        "custom_key": {"KEY_FUNCTION": custom_key_func},
        "custom_key2": {"KEY_FUNCTION": "tests.clients.test_django.custom_key_func"},
    }
    return {
        alias: {"BACKEND": BACKEND, "LOCATION": location, **extra, **params}
        for alias, extra in aliases.items()
    }


def close_clients() -> None:
    for backend in caches.all(initialized_only=True):
        if isinstance(backend, MemflaskCache):
            backend.client.close()


@pytest.fixture(params=["one-server", "three-servers"])
def location(request, live_server, app_settings, clock) -> Iterator[str]:
    """The server, or three whose keys the backend spreads (LOCATION "a,b,c"), one clock."""
    first = f"http://127.0.0.1:{live_server.port}"
    if request.param == "one-server":
        yield first
        return
    with contextlib.ExitStack() as stack:
        others = [
            stack.enter_context(LiveServer(create_app({**app_settings, "CLOCK": clock})))
            for _ in range(2)
        ]
        yield ",".join([first, *(f"http://127.0.0.1:{other.port}" for other in others)])


@pytest.fixture
def server(location):
    """A plain client on the same server, to see what the backend stored."""
    with Client(location) as client:
        yield client


@pytest.fixture
def cache(location):
    with override_settings(CACHES=caches_setting(location)):
        yield caches["default"]
        close_clients()


# -- configuration ---------------------------------------------------------------------


def test_caches_setting_builds_the_backend(cache, location):
    assert isinstance(cache, MemflaskCache)
    assert default_cache.set("k", "v") is None and default_cache.get("k") == "v"
    assert cache.client.url == location
    assert cache.default_timeout == 300


def test_options_go_to_the_client(clock):
    app = create_app({"APP_ENV": "production", "TOKEN": "right", "CLOCK": clock})
    with LiveServer(app) as live:
        location = f"http://127.0.0.1:{live.port}"
        setting = {
            "default": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"token": "right"}},
            "intruder": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"token": "no"}},
        }
        with override_settings(CACHES=setting):
            caches["default"].set("k", "v")
            assert caches["default"].get("k") == "v"
            with pytest.raises(MemflaskAuthenticationError):
                caches["intruder"].get("k")
            close_clients()


@pytest.mark.parametrize(
    ("location", "options"),
    [
        ("http://a:8000;http://a:8000", {}),
        (["http://a:8000", "http://b:8000", 8000], {}),
        ("http://127.0.0.1:8000", {"MAX_ENTRIES": 30}),
        ("http://127.0.0.1:8000", {"max_key_bytes": 0}),
        ("http://127.0.0.1:8000", {"max_key_bytes": "300"}),
    ],
    ids=["a-server-twice", "not-a-url", "unknown-option", "no-key-room", "key-room-as-text"],
)
def test_a_bad_configuration_is_improperly_configured(location, options):
    setting = {"default": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": options}}
    with override_settings(CACHES=setting), pytest.raises(ImproperlyConfigured):
        caches["default"]


def test_location_defaults_to_the_local_server():
    with override_settings(CACHES={"default": {"BACKEND": BACKEND}}):
        assert caches["default"].client.url == "http://127.0.0.1:8000"
        close_clients()


# -- get, set, add, delete, has_key ------------------------------------------------------


def test_simple_get_set(cache):
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_a_stored_none_is_returned_instead_of_the_default(cache):
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add(cache):
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_delete_answers_whether_the_key_was_there(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"
    assert cache.delete("key1") is False
    assert cache.delete("nonexistent_key") is False


def test_has_key_and_in(cache):
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert "null" in cache
    assert "goodbye1" not in cache


def test_keys_on_the_server_carry_prefix_and_version(cache, location, server):
    cache.set("somekey", 1)
    assert server.get(":1:somekey") == "1"
    with override_settings(CACHES=caches_setting(location, KEY_PREFIX="app", VERSION=3)):
        caches["default"].set("somekey", 2)
        assert server.get("app:3:somekey") == "2"
        close_clients()


def test_prefix_isolates_caches_on_one_server(cache):
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "this is a string",
        "Iñtërnâtiônàlizætiøn",
        "",
        42,
        -7,
        2**80,  # beyond the server's int64: pickled, still an int
        True,
        3.5,
        None,
        [1, 2, 3, 4],
        (1, 2, 3, 4),
        {"A": 1, "B": (2, 3)},
        b"\x00\xff",
        "!looks pickled",
        "12",  # a string of digits stays a string
        answer_42,
        Picklable,
    ],
    ids=repr,
)
def test_values_of_every_kind_come_back_equal_and_of_their_type(cache, value):
    cache.set("key", value)
    assert cache.get("key") == value
    assert type(cache.get("key")) is type(value)
    assert cache.get_many(["key"]) == {"key": value}


def test_unicode_keys_and_values_through_set_add_and_set_many(cache):
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    cache.delete_many(stuff)
    assert cache.set_many(stuff) == []
    assert cache.get_many(stuff) == stuff


def test_binary_strings(cache):
    compressed = compress(b"value_to_be_compressed")
    cache.set("binary1", compressed)
    assert decompress(cache.get("binary1")) == b"value_to_be_compressed"
    assert cache.add("binary1-add", compressed) is True
    assert cache.get("binary1-add") == compressed
    cache.set_many({"binary1-set_many": compressed})
    assert cache.get("binary1-set_many") == compressed


def test_integers_travel_as_text_and_the_rest_pickled(cache, server):
    cache.set("count", 41)
    cache.set("words", ["a"])
    assert server.get(":1:count") == "41"
    stored = server.get(":1:words")  # memflask.codec's text: base64 of "!" and the pickle
    assert stored.startswith("b64:")
    assert base64.b64decode(stored[4:]).startswith(b"!")
    # Text another client wrote reads back as text, integers as integers.
    server.set(":1:plain", "hello")
    server.set(":1:number", "-12")
    assert cache.get("plain") == "hello"
    assert cache.get("number") == -12


def test_a_flask_app_and_a_django_app_read_each_other_s_values(cache, location):
    """Both backends keep values in memflask.codec's one format."""
    flask_side = CachelibMemflaskCache(location, key_prefix=":1:")  # Django's key for "k"
    flask_side.set("from-flask", {"a": [1, 2]})
    flask_side.set("count", 7)
    cache.set("from-django", ("t", 1.5))
    assert cache.get("from-flask") == {"a": [1, 2]}
    assert cache.incr("count") == 8
    assert flask_side.get("from-django") == ("t", 1.5)
    assert flask_side.get("count") == 8


def test_unpicklable_values_raise_pickle_error(cache):
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable", Unpicklable())
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())
    assert cache.has_key("unpicklable") is False


# -- incr and decr -----------------------------------------------------------------------


def test_incr(cache):
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    assert cache.has_key("does_not_exist") is False  # the failed incr created nothing
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.incr("null")


def test_decr(cache):
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.decr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.decr("null")


def test_incr_keeps_the_expiry(cache, clock):
    cache.set("hits", 1, timeout=10)
    clock.tick(5)
    assert cache.incr("hits") == 2
    clock.tick(5)
    assert cache.get("hits") is None


def test_concurrent_increments_from_threads_lose_nothing(cache, location):
    # Django gives each thread a backend of its own (caches is thread-local); each one
    # increments the same counter on the server.
    cache.set("shared", 0)
    failures = []

    def work():
        try:
            backend = caches["default"]
            for _ in range(50):
                backend.incr("shared")
            backend.client.close()
        except Exception as error:  # reported below: a thread's exception is lost
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert cache.get("shared") == 200


# -- timeouts ----------------------------------------------------------------------------


def test_expiration(cache, clock):
    cache.set("expire1", "very quickly", 1)
    cache.set("expire2", "very quickly", 1)
    cache.set("expire3", "very quickly", 1)
    clock.tick(2)
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_the_default_timeout_is_300_seconds(cache, clock, server):
    cache.set("key", "value")
    assert server.ttl(":1:key") == 300
    clock.tick(300)
    assert cache.get("key") is None


def test_touch(cache, clock):
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=4) is True
    clock.tick(2)
    assert cache.has_key("expire1") is True
    clock.tick(3)
    assert cache.has_key("expire1") is False
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1") is True  # the default timeout, 300 s
    clock.tick(2)
    assert cache.has_key("expire1") is True
    assert cache.touch("nonexistent") is False


def test_none_never_expires(cache, clock):
    cache.set("key1", "eggs", None)
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    clock.tick(10**9)
    assert cache.get_many(["key1", "key2", "key3", "key4", "key5"]) == {
        "key1": "eggs",
        "key2": "ham",
        "key3": "sausage",
        "key4": "lobster bisque",
        "key5": "belgian fries",
    }


@pytest.mark.parametrize("timeout", [0, -1, 0.5])
def test_zero_or_less_expires_at_once(cache, timeout):
    cache.set("key1", "eggs", timeout)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", timeout) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, timeout)
    assert cache.get_many(["key3", "key4"]) == {}
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=timeout) is True
    assert cache.get("key5") is None


def test_float_and_long_timeouts(cache, clock):
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"
    # Past 30 days memcached reads a timeout as a Unix time; memflask keeps it relative.
    thirty_days_and_a_second = 60 * 60 * 24 * 30 + 1
    cache.set("key2", "eggs", thirty_days_and_a_second)
    assert cache.add("key3", "ham", thirty_days_and_a_second) is True
    cache.set_many({"key4": "sausage"}, thirty_days_and_a_second)
    clock.tick(thirty_days_and_a_second - 1)
    assert cache.get_many(["key2", "key3", "key4"]) == {
        "key2": "eggs",
        "key3": "ham",
        "key4": "sausage",
    }
    clock.tick(1)
    assert cache.get_many(["key2", "key3", "key4"]) == {}


@pytest.mark.parametrize(("timeout", "ttl"), [(None, None), (31536000, 31536000)])
def test_the_timeout_setting(location, server, timeout, ttl):
    with override_settings(CACHES=caches_setting(location, TIMEOUT=timeout)):
        cache = caches["default"]
        cache.set("future_foo", "bar")
        assert cache.get("future_foo") == "bar"
        assert server.ttl(":1:future_foo") == ttl
        close_clients()


# -- many keys ---------------------------------------------------------------------------


def test_get_many(cache):
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}
    assert cache.get_many([]) == {}


def test_set_many(cache, clock):
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"
    assert cache.set_many({}) == []
    cache.set_many({"key1": "spam", "key2": "eggs"}, 1)
    clock.tick(2)
    assert cache.get("key1") is None
    assert cache.get("key2") is None


def test_more_keys_than_one_request_carries(cache):
    # The server takes at most 1,000 keys a /mget or /batch: the backend sends several.
    data = {f"key{number}": number for number in range(2500)}
    assert cache.set_many(data) == []
    assert cache.get_many([*data, "absent"]) == data
    cache.delete_many(list(data)[:2400])
    assert cache.get_many(list(data)) == {f"key{number}": number for number in range(2400, 2500)}


def test_delete_many(cache):
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    assert cache.delete_many(["key1", "key2"]) is None
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert cache.get("key3") == "ham"
    assert cache.delete_many([]) is None


def test_values_over_the_server_limit(clock):
    app = create_app({"APP_ENV": "production", "MAX_VALUE_BYTES": 100, "CLOCK": clock})
    with LiveServer(app) as live:
        location = f"http://127.0.0.1:{live.port}"
        with override_settings(CACHES=caches_setting(location)):
            cache = caches["default"]
            # set_many answers the keys that failed, as memcached's set_multi does.
            assert cache.set_many({"small": "a", "large": "a" * 100}) == ["large"]
            assert cache.get("small") == "a"
            # A failed set leaves no stale value behind, as Django's memcached backends.
            with pytest.raises(MemflaskValueTooLarge):
                cache.set("small", "a" * 100)
            assert cache.get("small") is None
            close_clients()


# -- clear -------------------------------------------------------------------------------


def test_clear_removes_this_caches_keys_only(cache, server):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    caches["prefix"].set_many({"key1": "spam", "key2": "eggs"})
    server.set("not-django", "kept")
    caches["prefix"].clear()
    assert caches["prefix"].get_many(["key1", "key2"]) == {}
    assert cache.get_many(["key1", "key2"]) == {"key1": "spam", "key2": "eggs"}
    # KEY_PREFIX "" is a namespace too: ":<version>:<key>".
    cache.clear()
    assert cache.get_many(["key1", "key2"]) == {}
    assert server.get("not-django") == "kept"


def slash_key_func(key, key_prefix, version):
    """A key function that starts its keys with KEY_PREFIX, as clear() needs."""
    return f"{key_prefix}/{version}/{key}"


def test_clear_with_a_custom_key_function(location, server):
    setting = caches_setting(location)
    setting["slashes"] = {**setting["default"], "KEY_FUNCTION": slash_key_func}
    setting["slashes_mine"] = {**setting["slashes"], "KEY_PREFIX": "mine"}
    with override_settings(CACHES=setting):
        caches["slashes_mine"].set("answer", 42)
        caches["slashes"].set("answer", 42)
        caches["default"].set("answer", 42)
        assert server.get("mine/1/answer") == "42"
        # KEY_PREFIX starts every key of a custom key function: clear() removes those.
        caches["slashes_mine"].clear()
        assert caches["slashes_mine"].get("answer") is None
        assert caches["slashes"].get("answer") == 42
        assert caches["default"].get("answer") == 42
        # Without a KEY_PREFIX nothing tells its keys apart: the whole server goes.
        caches["slashes"].clear()
        assert caches["default"].get("answer") is None
        close_clients()


# -- keys --------------------------------------------------------------------------------

KEY_OPERATIONS = [
    ("add", lambda key: [key, 1]),
    ("get", lambda key: [key]),
    ("set", lambda key: [key, 1]),
    ("incr", lambda key: [key]),
    ("decr", lambda key: [key]),
    ("touch", lambda key: [key]),
    ("delete", lambda key: [key]),
    ("has_key", lambda key: [key]),
    ("get_many", lambda key: [[key, "b"]]),
    ("set_many", lambda key: [{key: 1, "b": 2}]),
    ("delete_many", lambda key: [[key, "b"]]),
]


@pytest.mark.parametrize(
    ("operation", "arguments"), KEY_OPERATIONS, ids=[o for o, _ in KEY_OPERATIONS]
)
def test_keys_memcached_would_refuse_warn_and_work(cache, operation, arguments):
    key = "key with spaces and 清"
    with pytest.warns(CacheKeyWarning) as caught:
        try:
            getattr(cache, operation)(*arguments(key))
        except ValueError:
            assert operation in ("incr", "decr")  # absent: the warning came first
    made = cache.make_key(key)
    assert str(caught[0].message) == (
        f"Cache key contains characters that will cause errors if used with memcached: {made!r}"
    )


@pytest.mark.parametrize(
    ("operation", "arguments"), KEY_OPERATIONS, ids=[o for o, _ in KEY_OPERATIONS]
)
@pytest.mark.parametrize(
    "key",
    # ":1:" makes them 251 characters, and 86 characters of 252 bytes (which Django's own
    # check, counting characters, lets through).
    ["a" * 248, "清" * 83],
    ids=["251-ascii-bytes", "252-utf8-bytes"],
)
def test_keys_over_250_bytes_are_refused_before_any_request(cache, operation, arguments, key):
    made = cache.make_key(key)
    assert len(made.encode()) > 250
    with pytest.raises(InvalidCacheKey) as caught:
        getattr(cache, operation)(*arguments(key))
    assert repr(made) in str(caught.value)
    assert set(cache.client.stats()["commands"]) == {"stats"}  # only this request


def test_keys_of_250_bytes_work(cache):
    key = "a" * 247
    made = cache.make_key(key)
    assert len(made) == 250
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set(key, "value")
        assert cache.get(key) == "value"


def test_a_server_with_longer_keys_takes_them_through_max_key_bytes(clock):
    """The server's MAX_KEY_BYTES raised to 400: OPTIONS["max_key_bytes"] says so."""
    app = create_app({"APP_ENV": "production", "MAX_KEY_BYTES": 400, "CLOCK": clock})
    with LiveServer(app) as served:
        location = f"http://127.0.0.1:{served.port}"
        setting = {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"max_key_bytes": 400}}
        with override_settings(CACHES={"default": setting}):
            cache = caches["default"]
            # Stored, with Django's portability warning (memcached would refuse it).
            with pytest.warns(CacheKeyWarning):
                cache.set("a" * 390, "long")  # 393 bytes with ":1:"
            with pytest.warns(CacheKeyWarning):
                assert cache.get("a" * 390) == "long"
            with pytest.raises(InvalidCacheKey):
                cache.set("a" * 398, "too long")  # 401 bytes
            close_clients()


# -- versions and key functions ----------------------------------------------------------


def test_versions_get_set_add_has_key(cache):
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.get("answer1", version=1) == 42
    assert cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42
    assert v2.has_key("answer1") is False
    assert v2.has_key("answer1", version=1) is True
    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert v2.get("answer2") == 42
    assert cache.add("answer3", 42, version=2) is True
    assert cache.add("answer3", 37, version=2) is False
    assert cache.add("answer3", 37, version=1) is True
    assert (cache.get("answer3"), v2.get("answer3")) == (37, 42)


def test_versions_delete_incr_decr_and_many(cache):
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert v2.delete("answer1") is True
    assert (cache.get("answer1"), cache.get("answer1", version=2)) == (37, None)
    cache.set("answer2", 37, version=1)
    cache.set("answer2", 42, version=2)
    assert cache.incr("answer2", version=2) == 43
    assert v2.decr("answer2", version=1) == 36
    assert (cache.get("answer2"), v2.get("answer2")) == (36, 43)
    v2.set_many({"ford": 37, "arthur": 42})
    assert cache.get_many(["ford", "arthur"]) == {}
    assert cache.get_many(["ford", "arthur"], version=2) == {"ford": 37, "arthur": 42}
    v2.delete_many(["ford"])
    assert v2.get_many(["ford", "arthur"]) == {"arthur": 42}


def test_incr_version_and_decr_version(cache):
    cache.set("answer", 42, version=2)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42
    assert cache.decr_version("answer", version=3) == 2
    assert cache.get("answer", version=2) == 42
    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2


def test_custom_key_functions(cache):
    cache.set("answer1", 42)
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None
    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key"].get("answer2") == 42
    assert caches["custom_key2"].get("answer2") == 42


# -- get_or_set, close, async, views -----------------------------------------------------


def test_get_or_set(cache):
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    assert cache.get("null", "default") is None  # None was stored
    assert cache.get_or_set("mykey", lambda: "value") == "value"
    assert cache.get_or_set("mykey", "other") == "value"
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=1) is None
    with pytest.raises(TypeError):
        cache.get_or_set("brian")


def test_get_or_set_when_another_writer_comes_first(cache):
    def compute():
        cache.set("key", "theirs")  # written while this caller computes: its lease ends
        return "mine"

    assert cache.get_or_set("key", compute) == "mine"
    assert cache.get("key") == "theirs"  # the other write stands


def test_twenty_threads_of_get_or_set_on_a_cold_key_compute_it_once(cache):
    computed = []

    def compute():
        computed.append(1)
        time.sleep(0.3)
        return {"report": 42}

    start = threading.Barrier(20)
    results = []

    def caller():
        start.wait(timeout=10)
        results.append(caches["default"].get_or_set("cold", compute, timeout=60))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert computed == [1]
    assert results == [{"report": 42}] * 20


def test_aget_or_set_computes_under_the_lease(cache):
    async def scenario():
        computed = []

        def compute():
            computed.append(1)
            time.sleep(0.2)
            return 7

        results = await asyncio.gather(*(cache.aget_or_set("cold", compute) for _ in range(5)))
        return results, computed

    assert asyncio.run(scenario()) == ([7] * 5, [1])


def test_invalidate_keeps_the_value_for_get_or_set_until_refreshed(cache):
    cache.set("k", "old")
    assert cache.invalidate("k") is True
    assert cache.get("k") is None  # as after a delete
    assert cache.get_or_set("k", "new") == "new"  # this caller refreshed it
    assert cache.get("k") == "new"
    assert cache.invalidate("absent") is False


@pytest.mark.parametrize("lease", [0, 3601, "30", 1.5])
def test_a_bad_lease_option_is_refused(location, lease):
    setting = {"default": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"lease": lease}}}
    with override_settings(CACHES=setting), pytest.raises(ImproperlyConfigured, match="lease"):
        caches["default"]


def test_close_after_a_request_keeps_the_cache_usable(cache):
    cache.set("k", "v")
    signals.request_finished.send(sender=None)  # Django closes every cache here
    cache.close()
    assert cache.get("k") == "v"


def test_async_methods(cache):
    async def scenario():
        await cache.aset("k", 41)
        assert await cache.aincr("k") == 42
        assert await cache.aget_many(["k", "absent"]) == {"k": 42}
        assert await cache.ahas_key("k") is True
        assert await cache.adelete("k") is True
        assert await cache.aget("k", "gone") == "gone"

    asyncio.run(scenario())


def test_cache_page_serves_a_view_from_memflask(cache, server):
    calls = []

    @cache_page(60)
    def view(request):
        calls.append(1)
        response = HttpResponse(f"rendered {len(calls)}")
        response.set_cookie("foo", "bar")
        return response

    request_factory = RequestFactory()
    first = view(request_factory.get("/report"))
    second = view(request_factory.get("/report"))
    assert first.content == second.content == b"rendered 1"
    assert len(calls) == 1
    assert second.cookies["foo"].value == "bar"
    assert any(key.startswith(":1:views.decorators.cache") for key in server.iter_keys(":1:"))


def test_the_cache_session_backend_keeps_sessions_in_memflask(cache, server):
    from django.contrib.sessions.backends.cache import SessionStore

    session = SessionStore()
    session["user"] = "alice"
    session.save()
    assert server.get(cache.make_key(session.cache_key)) is not None
    assert SessionStore(session.session_key)["user"] == "alice"
    session.flush()
    assert SessionStore(session.session_key).get("user") is None
