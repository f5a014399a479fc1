"""A memflask server as a Django cache backend.

    CACHES = {
        "default": {
            "BACKEND": "memflask.django.MemflaskCache",
            "LOCATION": "http://127.0.0.1:8000",
            "OPTIONS": {"token": "...", "timeout": 5.0},  # memflask.client.Client's
            "KEY_PREFIX": "myapp",
        }
    }

LOCATION names one server, or several (a list, or separated by ";" or ","), as for
Django's memcached backends: the keys are spread over them (memflask.placement).
OPTIONS go to memflask.client.Client: `token`, `timeout` (seconds one call to the server
may take in all, connecting to the last byte of the answer; TIMEOUT is the expiry),
`max_answer_bytes` (the largest answer read), `max_connections`, and with several
servers `dead_after`, `dead_timeout`, `ignore_unavailable`, `remap_dead`
(memflask.sharding); `max_key_bytes` is the server's MAX_KEY_BYTES; `lease` the seconds
get_or_set's computation may take (below).

`get_or_set()` (and `aget_or_set()`) computes a missing value once across every process:
the first caller that misses takes the key's lease from the server and computes, the
others wait for its value (within `lease` seconds, default 30) instead of computing it
too (memflask.stampede). `delete()` keeps its meaning; `invalidate(key)` is an extra:
the value turns stale, so get() misses it while get_or_set() callers keep getting it
until one of them has refreshed it.

Django's BaseCache contract holds: `timeout=None` never expires, `0` (or less) expires at
once, `KEY_PREFIX`, `VERSION` and `KEY_FUNCTION` make the keys, `incr`/`decr` raise
ValueError on a missing key, `clear()` removes this cache's keys only (`/flush?prefix=`),
and keys memcached would refuse get Django's CacheKeyWarning. A key over memflask's 250
UTF-8 bytes is refused with InvalidCacheKey before any request, as Django's memcached
backends refuse theirs: the server would answer 400.

Values are serialised by memflask.codec, as Django's Redis backend does: integers as
plain text, so `incr` and `decr` run atomically on the server, and everything else
pickled (in base64: memflask stores text). memflask.caching writes the same, so a Flask
and a Django app can share values. As with every pickle-based cache, whoever can write to
the cache can run code in the app that reads it: give the server a token, keep it on a
trusted network.

Importing this module imports Django's cache base (the `memflask[django]` extra) and
memflask.client; `import django` here is the Django package, as imports are absolute.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Union

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    InvalidCacheKey,
    default_key_func,
)
from django.core.exceptions import ImproperlyConfigured

from . import codec
from .client import Client, MemflaskValidationError, MemflaskValueTooLarge

# The server's defaults: the longest key (memcached's), and the most keys one /mget or
# commands one /batch may carry.
from .limits import MAX_BATCH as BATCH_SIZE
from .limits import MAX_KEY_BYTES, MAX_LEASE_SECONDS
from .stampede import DEFAULT_LEASE_SECONDS

__all__ = ["MemflaskCache"]

DEFAULT_LOCATION = "http://127.0.0.1:8000"


class MemflaskCache(BaseCache):
    """Django's cache API on a memflask server, through one pooled memflask.client.Client."""

    def __init__(self, server: Union[str, list[str], None], params: dict[str, Any]):
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        # The server's MAX_KEY_BYTES, when it is not memflask's default.
        self.max_key_bytes = options.pop("max_key_bytes", MAX_KEY_BYTES)
        if type(self.max_key_bytes) is not int or self.max_key_bytes < 1:
            raise ImproperlyConfigured(
                "memflask.django.MemflaskCache: OPTIONS max_key_bytes must be a positive "
                f"integer (the server's MAX_KEY_BYTES), got {self.max_key_bytes!r}"
            )
        self.lease = options.pop("lease", DEFAULT_LEASE_SECONDS)
        if type(self.lease) is not int or not 1 <= self.lease <= MAX_LEASE_SECONDS:
            raise ImproperlyConfigured(
                "memflask.django.MemflaskCache: OPTIONS lease must be whole seconds from 1 "
                f"to {MAX_LEASE_SECONDS}, got {self.lease!r}"
            )
        try:
            self.client = Client(_locations(server), **options)
        except TypeError as error:
            raise ImproperlyConfigured(
                f"memflask.django.MemflaskCache: {error}. OPTIONS are memflask.client.Client's "
                "(token, timeout, max_answer_bytes, max_connections, dead_after, dead_timeout, "
                "ignore_unavailable, remap_dead, ca_file), max_key_bytes and lease"
            ) from error
        except ValueError as error:  # a LOCATION listing a server twice
            raise ImproperlyConfigured(f"memflask.django.MemflaskCache: {error}") from error

    # -- serialisation -------------------------------------------------------------------

    @staticmethod
    def dumps(value: Any) -> str:
        return codec.text_of(codec.dumps(value))

    @staticmethod
    def loads(text: str) -> Any:
        return codec.loads(codec.data_of(text))

    # -- keys and timeouts ---------------------------------------------------------------

    def validate_key(self, key: str) -> None:
        """Refuse keys the server refuses; warn about the rest memcached would refuse."""
        if not key or len(key.encode("utf-8")) > self.max_key_bytes:
            raise InvalidCacheKey(
                f"Cache key will cause errors with memflask: {key!r} (empty, or longer "
                f"than {self.max_key_bytes} UTF-8 bytes)"
            )
        # memflask stores spaces and control characters; Django's portability warning
        # (CacheKeyWarning, as on its local-memory, file, database and Redis backends)
        # still says that memcached would not.
        super().validate_key(key)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> int:
        """Django's timeout as memflask's `ttl`: 0 never expires (Django's None), and a
        negative ttl stores the item already expired (Django's 0 or less)."""
        if timeout == DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return 0
        # Truncated as Django's memcached backends do: 0.5 s is "expire at once" there.
        seconds = int(timeout)
        return seconds if seconds > 0 else -1

    def key_namespace(self) -> str:
        """The start of every key this cache makes: what `clear()` removes.

        Django's default key function makes "<KEY_PREFIX>:<version>:<key>". A custom
        KEY_FUNCTION must start its keys with KEY_PREFIX for `clear()` to find them; with
        neither a default key function nor a KEY_PREFIX, it is "" (the whole server).
        """
        if self.key_func is default_key_func:
            return f"{self.key_prefix}:"
        return self.key_prefix

    # -- Django's cache API --------------------------------------------------------------

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self.client.add(key, self.dumps(value), expire=self.get_backend_timeout(timeout))

    def get(self, key: str, default: Any = None, version=None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        text = self.client.get(key)
        return default if text is None else self.loads(text)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version=None) -> None:
        key = self.make_and_validate_key(key, version=version)
        text = self.dumps(value)
        try:
            self.client.set(key, text, expire=self.get_backend_timeout(timeout))
        except MemflaskValueTooLarge:
            # As Django's memcached backends: a failed set leaves no stale value behind
            # (the cached_db session backend must read the current session or none).
            self.client.delete(key)
            raise

    def get_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT, version=None
    ) -> Any:
        """The value, or `default` (called if callable) stored and returned: computed by one
        caller across every process, the others waiting for it (the server's lease)."""
        key = self.make_and_validate_key(key, version=version)

        def compute() -> str:
            return self.dumps(default() if callable(default) else default)

        text = self.client.get_or_set(
            key, compute, expire=self.get_backend_timeout(timeout), lease=self.lease
        )
        return self.loads(text)

    async def aget_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT, version=None
    ) -> Any:
        # Django's own calls aget() then aadd(): the lease's waiting would be lost.
        return await sync_to_async(self.get_or_set, thread_sensitive=False)(
            key, default, timeout, version
        )

    def invalidate(self, key: str, version=None) -> bool:
        """Turn the value stale: get() misses it, get_or_set() callers get it until one of
        them has refreshed it. False if the key is absent."""
        key = self.make_and_validate_key(key, version=version)
        return self.client.invalidate(key)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self.client.touch(key, expire=self.get_backend_timeout(timeout))

    def delete(self, key: str, version=None) -> bool:
        """Delete the key; answer whether it was there."""
        key = self.make_and_validate_key(key, version=version)
        return self.client.delete(key)

    def get_many(self, keys: Iterable[str], version=None) -> dict[str, Any]:
        original_keys = {self.make_and_validate_key(key, version=version): key for key in keys}
        made_keys = list(original_keys)
        found: dict[str, str] = {}
        for start in range(0, len(made_keys), BATCH_SIZE):
            found.update(self.client.get_many(made_keys[start : start + BATCH_SIZE]))
        return {original_keys[key]: self.loads(text) for key, text in found.items()}

    def has_key(self, key: str, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._exists(key)

    def incr(self, key: str, delta: int = 1, version=None) -> int:
        """Add `delta` on the server, atomically; ValueError if the key is absent,
        TypeError if its value is not an integer. `decr` is `incr` of -delta."""
        key = self.make_and_validate_key(key, version=version)
        # memflask's /increment sets an absent key, Django wants a ValueError: look first,
        # as Django's Redis backend does (EXISTS, then INCR). Between the two a key that
        # expires comes back as `delta`, without an expiry.
        if not self._exists(key):
            raise ValueError(f"Key '{key}' not found")
        try:
            return self.client.incr(key, delta)
        except MemflaskValidationError as error:
            if error.code == "not_an_integer":
                raise TypeError(f"the value of {key!r} is not an integer") from error
            raise

    def set_many(self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT, version=None):
        """Store every value (/batch); answer the keys that failed, as memcached does."""
        original_keys = {self.make_and_validate_key(key, version=version): key for key in data}
        texts = [(made, self.dumps(data[key])) for made, key in original_keys.items()]
        expire = self.get_backend_timeout(timeout)
        failed: list[str] = []
        for start in range(0, len(texts), BATCH_SIZE):
            chunk = dict(texts[start : start + BATCH_SIZE])
            failed += self.client.set_many(chunk, expire=expire)
        return [original_keys[key] for key in failed]

    def delete_many(self, keys: Iterable[str], version=None) -> None:
        made_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        for start in range(0, len(made_keys), BATCH_SIZE):
            self.client.delete_many(made_keys[start : start + BATCH_SIZE])

    def clear(self) -> None:
        """Remove this cache's keys (see `key_namespace`), not the other apps' on the server."""
        namespace = self.key_namespace()
        if namespace:
            self.client.delete_prefix(namespace)
        else:
            self.client.flush_all()

    def close(self, **kwargs: Any) -> None:
        """Keep the pool open: Django calls this after every request, and the client's
        keep-alive connections are what make the next request fast (urllib3 cleans up)."""

    # -- the wire ------------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        # /ttl: no value sent back, and it counts neither as a hit nor as a miss.
        try:
            self.client.ttl(key)
        except KeyError:
            return False
        return True


def _locations(location: Union[str, list[str], None]) -> list[str]:
    """The servers' URLs: LOCATION, one or several (a list, or separated by ";" or ",", as
    Django's memcached backends take them), the keys spread over them by the client."""
    if isinstance(location, (list, tuple)):
        locations = list(location)  # the client refuses what is not a URL
    else:
        locations = [part.strip() for part in re.split("[;,]", location or "") if part.strip()]
    return locations or [DEFAULT_LOCATION]
