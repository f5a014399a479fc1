"""A memflask server as the cache of a Flask app (Flask-Caching), or of cachelib alone.

    cache = Cache(app, config={
        "CACHE_TYPE": "memflask.caching.MemflaskCache",
        "CACHE_MEMFLASK_URL": "http://127.0.0.1:8000",
        "CACHE_MEMFLASK_TOKEN": None,          # when the server sets MEMFLASK_TOKEN
        "CACHE_KEY_PREFIX": "myapp:",
    })

Importing this module imports cachelib and memflask.client, not Flask. The work is done
by `CachelibMemflaskCache`, a cachelib cache usable without Flask
(`CachelibMemflaskCache(url, token=..., key_prefix=...)`). `MemflaskCache`, the
Flask-Caching backend, is that class on Flask-Caching's BaseCache, built on first use:
importing Flask-Caching imports Flask, and Flask-Caching (2.3 to 2.5) calls a backend's
`factory(app, config, args, options)` only when the class subclasses its BaseCache
(anything else is called with those four arguments itself).

Values are serialised as Flask-Caching's Redis backend does (cachelib's RedisSerializer):
integers as plain text, so `inc`/`dec` run on the server, and everything else pickled
behind a "!" marker; memflask stores text, so the pickle travels in base64. As with
every pickle-based backend, whoever can write to the cache can run code in the app that
reads it: give the server a token, and keep it on a trusted network.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any, Mapping, Optional

from cachelib import BaseCache

from .client import Client

PICKLED = "!"


class CachelibMemflaskCache(BaseCache):
    """cache.get/set/add/delete/inc/dec/get_many/set_many/clear on a memflask server."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: Optional[str] = None,
        timeout: float = 5.0,
        default_timeout: int = 300,
        key_prefix: str = "",
        **options: Any,
    ):
        # The base's own options (ignore_delete_many_errors, ...) go to the next class in
        # the MRO: cachelib's BaseCache here, Flask-Caching's BaseCache in MemflaskCache.
        super().__init__(default_timeout=default_timeout, **options)
        self.client = Client(url, token=token, timeout=timeout)
        self.key_prefix = key_prefix

    # -- serialisation -------------------------------------------------------------------

    @staticmethod
    def dumps(value: Any) -> str:
        if type(value) is int:  # not bool: True must come back as True
            return str(value)
        return PICKLED + base64.b64encode(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)).decode()

    @staticmethod
    def loads(text: Optional[str]) -> Any:
        if text is None:
            return None
        if text.startswith(PICKLED):
            return pickle.loads(base64.b64decode(text[1:]))  # trusted: see the module doc
        try:
            return int(text)
        except ValueError:
            return text  # written by another client as plain text

    # -- the cache API -------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    def _expire(self, timeout: Optional[int]) -> int:
        return max(0, self._normalize_timeout(timeout))

    def get(self, key: str) -> Any:
        return self.loads(self.client.get(self._key(key)))

    def get_many(self, *keys: str) -> list[Any]:
        found = self.client.get_many(self._key(key) for key in keys)
        return [self.loads(found.get(self._key(key))) for key in keys]

    def has(self, key: str) -> bool:
        return self.client.get(self._key(key)) is not None

    def set(self, key: str, value: Any, timeout: Optional[int] = None) -> bool:
        return self.client.set(self._key(key), self.dumps(value), expire=self._expire(timeout))

    def set_many(self, mapping: dict[str, Any], timeout: Optional[int] = None) -> list[Any]:
        encoded = {self._key(key): self.dumps(value) for key, value in mapping.items()}
        failed = set(self.client.set_many(encoded, expire=self._expire(timeout)))
        return [key for key in mapping if self._key(key) not in failed]

    def add(self, key: str, value: Any, timeout: Optional[int] = None) -> bool:
        return self.client.add(self._key(key), self.dumps(value), expire=self._expire(timeout))

    def delete(self, key: str) -> bool:
        return self.client.delete(self._key(key))

    def delete_many(self, *keys: str) -> list[Any]:
        return [key for key in keys if self.delete(key)]

    def clear(self) -> bool:
        """Flush the whole server: memflask has no listing of keys by prefix."""
        return self.client.flush_all()

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
                url=config.get("CACHE_MEMFLASK_URL", "http://127.0.0.1:8000"),
                token=config.get("CACHE_MEMFLASK_TOKEN"),
                key_prefix=config.get("CACHE_KEY_PREFIX") or "",
            )
            return cls(*args, **kwargs)

    return MemflaskCache
