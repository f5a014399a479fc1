"""The Redis store (`STORE_URL=redis://...`): the store (`store`), its connection, pool
and breaker (`connection`), and its Lua scripts (`scripts`). Imported only when a Redis
URL is set, as it imports redis-py."""

from .store import RedisStore

__all__ = ["RedisStore"]
