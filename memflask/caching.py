"""A memflask server as the cache of a Flask app (Flask-Caching), or of cachelib alone.

    cache = Cache(app, config={
        "CACHE_TYPE": "memflask.caching.MemflaskCache",
        "CACHE_MEMFLASK_URL": "http://127.0.0.1:8000",
        "CACHE_MEMFLASK_TOKEN": None,          # when the server sets MEMFLASK_TOKEN
        "CACHE_MEMFLASK_TIMEOUT": 5.0,         # seconds a call may take in all
        "CACHE_KEY_PREFIX": "myapp:",
    })

CACHE_MEMFLASK_SERVERS (a list, as CACHE_MEMCACHED_SERVERS) spreads the keys over several
servers instead (memflask.placement), and `clear()` clears each of them; CACHE_OPTIONS
may give the client's failover settings (memflask.sharding). CACHE_MEMFLASK_TIMEOUT is a
network deadline (CACHE_DEFAULT_TIMEOUT is the expiry), and
CACHE_MEMFLASK_MAX_ANSWER_BYTES the largest answer read: memflask.client.Client's
`timeout` and `max_answer_bytes`.

Importing this module imports cachelib and memflask.client, not Flask. The work is done
by `CachelibMemflaskCache`, a cachelib cache usable without Flask
(`CachelibMemflaskCache(url, token=..., key_prefix=...)`). `MemflaskCache`, the
Flask-Caching backend, is that class on Flask-Caching's BaseCache, built on first use:
importing Flask-Caching imports Flask, and Flask-Caching (2.3 to 2.5) calls a backend's
`factory(app, config, args, options)` only when the class subclasses its BaseCache
(anything else is called with those four arguments itself).

Values go through the cache's `serializer`, as in cachelib's Redis backend: by default
MemflaskSerializer, cachelib's RedisSerializer writing memflask.codec's bytes (integers as
plain text, so `inc`/`dec` run on the server, everything else pickled), which
memflask.django writes too. Flask-Caching's CACHE_SERIALIZER, the `serializer` option or
the `serializer` attribute choose another (cachelib's JSONSerializer: no pickle). The
serialised bytes are stored as memflask.codec's text. As with every pickle-based backend,
whoever can write to the cache can run code in the app that reads it: give the server a
token, keep it on a trusted network, or choose JSON.

CACHE_MEMFLASK_LEASE (the `lease` option: seconds, off by default) protects from stampedes
(memflask.stampede): a `get` that misses takes the key's lease, or waits while another
caller holds it (up to that many seconds) and returns the value that caller stored; the
`set` of the same key that follows in the same thread writes under the lease. So
`@cache.cached` and `@cache.memoize` views and functions run once for N concurrent
misses, in every process. It is off by default because a `get` that misses and is
never followed by a `set` keeps the others of that key waiting until the lease ends:
turn it on where misses are followed by a set (the decorators, get-then-set code).

Keys longer than memcached's 250 bytes (with the prefix) are hashed to a stable short
key under the same prefix, as memcached backends do, so a long URL or memoized
argument list is cached rather than refused.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from typing import Any, Mapping, Optional, Sequence, Union

from cachelib import BaseCache
from cachelib.serializers import RedisSerializer

from . import codec
from .client import DEFAULT_MAX_ANSWER_BYTES, Client, MemflaskError
from .limits import (
    MAX_KEY_BYTES,  # the server's default, as memcached's
    MAX_LEASE_SECONDS,
)
from .sharding import DEAD_AFTER, DEAD_TIMEOUT

# What a hashed key holds after the prefix: this marker and the key's SHA-256 in hex.
HASHED_KEY_MARKER = "sha256:"
HASHED_KEY_BYTES = len(HASHED_KEY_MARKER) + 64
# Client options -> the Flask-Caching settings that give them.
CLIENT_SETTINGS = {
    "timeout": "CACHE_MEMFLASK_TIMEOUT",
    "max_answer_bytes": "CACHE_MEMFLASK_MAX_ANSWER_BYTES",
    "lease": "CACHE_MEMFLASK_LEASE",
    "ca_file": "CACHE_MEMFLASK_CA_FILE",
}


class MemflaskSerializer(RedisSerializer):
    """cachelib's RedisSerializer writing memflask.codec's bytes: integers as plain text, so
    inc/dec run on the server (cachelib 0.14, on Python 3.9 and 3.10, pickles them too).
    """

    def dumps(self, value: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
        return codec.dumps(value)


class CachelibMemflaskCache(BaseCache):
    """cache.get/set/add/delete/inc/dec/get_many/set_many/clear on a memflask server."""

    serializer = MemflaskSerializer()

    def __init__(
        self,
        url: Union[str, Sequence[str]] = "http://127.0.0.1:8000",
        token: Optional[str] = None,
        timeout: Optional[float] = 5.0,
        default_timeout: int = 300,
        key_prefix: Optional[str] = "",
        serializer: Any = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        dead_after: int = DEAD_AFTER,
        dead_timeout: float = DEAD_TIMEOUT,
        ignore_unavailable: bool = False,
        remap_dead: bool = False,
        lease: Optional[int] = None,
        ca_file: Optional[str] = None,
        **options: Any,
    ):
        """`url`: one server, or several (a list, or separated by commas) whose keys are
        spread, with the client's failover settings (memflask.sharding). `lease`: seconds
        a caller that missed may take to compute and set the value (None: no leases)."""
        # The base's own options (ignore_delete_many_errors, ...) go to the next class in
        # the MRO: cachelib's BaseCache here, Flask-Caching's BaseCache in MemflaskCache.
        super().__init__(default_timeout=default_timeout, **options)
        # `timeout` bounds each call to the server; `default_timeout` is the expiry.
        self.client = Client(
            url,
            token=token,
            timeout=timeout,
            max_answer_bytes=max_answer_bytes,
            dead_after=dead_after,
            dead_timeout=dead_timeout,
            ignore_unavailable=ignore_unavailable,
            remap_dead=remap_dead,
            ca_file=ca_file,
        )
        self.key_prefix = key_prefix or ""  # None, as cachelib's backends accept it
        if len(self.key_prefix.encode()) > MAX_KEY_BYTES - HASHED_KEY_BYTES:
            raise ValueError(
                f"key_prefix is over {MAX_KEY_BYTES - HASHED_KEY_BYTES} UTF-8 bytes: "
                "a hashed long key would not fit after it"
            )
        if serializer is not None:
            self.serializer = serializer
        if lease is not None and (type(lease) is not int or not 1 <= lease <= MAX_LEASE_SECONDS):
            raise ValueError(
                f"lease must be whole seconds from 1 to {MAX_LEASE_SECONDS}: {lease!r}"
            )
        self.lease = lease
        # Per thread: the (server key, token) of the lease its last get took, for its set.
        self._held = threading.local()

    # -- serialisation -------------------------------------------------------------------

    def dumps(self, value: Any) -> Optional[str]:
        """The text to store for `value`; None when the serialiser could not encode it."""
        data = self.serializer.dumps(value)
        if data is None:  # cachelib's serialisers warn and answer None on failure
            return None
        return codec.text_of(data)

    def loads(self, text: Optional[str]) -> Any:
        if text is None:
            return None  # a miss (JSONSerializer would log a warning for each one)
        return self.serializer.loads(codec.data_of(text))

    # -- the cache API -------------------------------------------------------------------

    def _key(self, key: str) -> str:
        """The server's key: the prefix and `key`, or the prefix and the key's hash when
        that is over MAX_KEY_BYTES (the server would refuse it)."""
        full_key = self.key_prefix + key
        if len(full_key.encode("utf-8")) <= MAX_KEY_BYTES:
            return full_key
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self.key_prefix}{HASHED_KEY_MARKER}{digest}"

    def _expire(self, timeout: Optional[int]) -> int:
        return max(0, self._normalize_timeout(timeout))

    def get(self, key: str) -> Any:
        server_key = self._key(key)
        if self.lease is None:
            return self.loads(self.client.get(server_key))
        text, token = self.client.get_leased(server_key, self.lease)
        self._held.lease = None if token is None else (server_key, token)
        return self.loads(text)

    def get_many(self, *keys: str) -> list[Any]:
        server_keys = [self._key(key) for key in keys]
        found = self.client.get_many(server_keys)
        return [self.loads(found.get(server_key)) for server_key in server_keys]

    def has(self, key: str) -> bool:
        # /ttl answers 404 for an absent key without sending the value back.
        try:
            self.client.ttl(self._key(key))
        except KeyError:
            return False
        return True

    def set(self, key: str, value: Any, timeout: Optional[int] = None) -> bool:
        """Store the value; under the lease this thread's last get took on the key, if it
        did (False, nothing stored, when another write came first)."""
        server_key = self._key(key)
        held, self._held.lease = getattr(self._held, "lease", None), None
        text = self.dumps(value)
        if text is None:
            return False
        lease = held[1] if held is not None and held[0] == server_key else None
        return self.client.set(server_key, text, expire=self._expire(timeout), lease=lease)

    def set_many(self, mapping: dict[str, Any], timeout: Optional[int] = None) -> list[Any]:
        encoded = {key: self.dumps(value) for key, value in mapping.items()}
        server_keys = {key: self._key(key) for key, text in encoded.items() if text is not None}
        values = {server_keys[key]: encoded[key] for key in server_keys}
        failed = set(self.client.set_many(values, expire=self._expire(timeout)))
        return [key for key, server_key in server_keys.items() if server_key not in failed]

    def add(self, key: str, value: Any, timeout: Optional[int] = None) -> bool:
        text = self.dumps(value)
        if text is None:
            return False
        return self.client.add(self._key(key), text, expire=self._expire(timeout))

    def delete(self, key: str) -> bool:
        """Whether the key existed and has been deleted, as cachelib asks (one request)."""
        return self.client.delete(self._key(key))

    def delete_many(self, *keys: str) -> list[Any]:
        """The keys now absent: a key that was not there counts as deleted (cachelib 0.16+).

        A key the server could not delete is left out, or raises RuntimeError when
        ignore_delete_many_errors is False.
        """
        deleted, failed = [], []
        last_error: Optional[MemflaskError] = None
        for key in keys:
            try:
                self.client.delete(self._key(key))
            except MemflaskError as error:
                failed.append(key)
                last_error = error
            else:
                deleted.append(key)
        # cachelib before 0.16 has no such option: it never raised.
        if failed and not getattr(self, "ignore_delete_many_errors", True):
            raise RuntimeError(f"Failed to delete keys: {failed}") from last_error
        return deleted

    def clear(self) -> bool:
        """Remove this cache's keys: those under its prefix, or every key without one."""
        if not self.key_prefix:
            return self.client.flush_all()  # as cachelib's memcached and Redis backends
        self.client.delete_prefix(self.key_prefix)
        return True

    def inc(self, key: str, delta: int = 1) -> int:
        return self.client.incr(self._key(key), delta)

    def dec(self, key: str, delta: int = 1) -> int:
        # Increment by -delta: an absent key becomes -delta, as in Flask-Caching's other
        # backends (memflask's own /decrement would set it to +delta, as the original).
        return self.client.incr(self._key(key), -delta)


def __getattr__(name: str) -> Any:
    # Called only for names this module does not define (PEP 562): MemflaskCache is built
    # on its first lookup, then stored in the globals, where later lookups find it.
    if name == "MemflaskCache":
        # setdefault: two threads racing here still end up with one class.
        return globals().setdefault(name, _flask_caching_backend())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _flask_caching_backend() -> type:
    """Build MemflaskCache: CachelibMemflaskCache on Flask-Caching's BaseCache."""
    try:
        from flask_caching.backends.base import BaseCache as FlaskCachingBaseCache
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "MemflaskCache is the Flask-Caching backend: pip install memflask[caching] "
            "(CachelibMemflaskCache needs cachelib alone)",
            name=error.name,
        ) from error

    class MemflaskCache(CachelibMemflaskCache, FlaskCachingBaseCache):
        """The Flask-Caching backend: CACHE_TYPE "memflask.caching.MemflaskCache"."""

        __qualname__ = "MemflaskCache"  # found under this name in the module, as pickle expects

        @classmethod
        def factory(
            cls, app: Any, config: Mapping[str, Any], args: list[Any], kwargs: dict[str, Any]
        ) -> CachelibMemflaskCache:
            """How Flask-Caching builds a backend: `kwargs` holds default_timeout and, from
            2.5, ignore_delete_many_errors (CACHE_IGNORE_ERRORS), plus CACHE_OPTIONS."""
            kwargs.update(
                url=config.get("CACHE_MEMFLASK_SERVERS")
                or config.get("CACHE_MEMFLASK_URL", "http://127.0.0.1:8000"),
                token=config.get("CACHE_MEMFLASK_TOKEN"),
                key_prefix=config.get("CACHE_KEY_PREFIX"),
            )
            # Set only when given, so CACHE_OPTIONS' "timeout" still works.
            for option, setting in CLIENT_SETTINGS.items():
                if setting in config:
                    kwargs[option] = config[setting]
            return cls(*args, **kwargs)

    return MemflaskCache
