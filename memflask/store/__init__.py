"""The cache's storage: the interface any backend implements (`base`), the in-memory
store (`memory`), its eviction policies (`eviction`) and its snapshot file (`snapshot`);
the Redis store is in `redis/`, imported only when it is used. STORE_URL's scheme picks
the backend from `BACKENDS`.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, NamedTuple, Optional

from .base import (
    DELETE,
    EXPIRING_ITEM_BYTES,
    EXPIRY_SECOND_BYTES,
    INDEX_ENTRY_BYTES,
    ITEM_BYTES,
    NEVER,
    STATS_FIELDS,
    STATS_METRICS,
    WALL_STEP_SECONDS,
    Change,
    ChangeFunction,
    Clock,
    Delete,
    Item,
    ItemTooLarge,
    LeaseNotHeld,
    LeaseRead,
    Metric,
    ServerChange,
    Store,
    StoreStats,
    StoreUnavailable,
    TtlDeadline,
    TtlItem,
    WriteOutcomeUnknown,
    item_bytes,
    str_bytes,
    utf8_len,
)
from .eviction import EVICTION_POLICIES
from .memory import MemoryStore


class Backend(NamedTuple):
    """A store STORE_URL can name, and what it can do, known before it is imported."""

    target: str  # "module:Class", imported when used (redis-py only by an app on Redis)
    # Items held in this process: no I/O to wait for, lost with the process, seen by it
    # alone (so one process serves them, and SNAPSHOT_PATH can save them).
    in_process: bool


REDIS = Backend("memflask.store.redis:RedisStore", in_process=False)
# STORE_URL's schemes (as uvicorn's HTTP_PROTOCOLS table): the memory store, and Redis (a
# server, TLS, a socket, a cluster), whose items every process using it shares.
BACKENDS = {
    "memory": Backend("memflask.store.memory:MemoryStore", in_process=True),
    "redis": REDIS,
    "rediss": REDIS,
    "unix": REDIS,
    "redis+cluster": REDIS,
}


def backend_for(url: Any) -> Optional[Backend]:
    """The backend a STORE_URL names (None: no backend has its scheme)."""
    if not isinstance(url, str) or "://" not in url:
        return None
    return BACKENDS.get(url.partition("://")[0])


def make_store(settings: Mapping[str, Any]) -> Store:
    """The store an app's settings name, built from them (STORE_URL already validated)."""
    module, _, name = backend_for(settings["STORE_URL"]).target.partition(":")
    return getattr(importlib.import_module(module), name).from_settings(settings)


__all__ = [
    "BACKENDS",
    "DELETE",
    "EVICTION_POLICIES",
    "EXPIRING_ITEM_BYTES",
    "EXPIRY_SECOND_BYTES",
    "INDEX_ENTRY_BYTES",
    "ITEM_BYTES",
    "NEVER",
    "STATS_FIELDS",
    "STATS_METRICS",
    "WALL_STEP_SECONDS",
    "Backend",
    "Change",
    "ChangeFunction",
    "Clock",
    "Delete",
    "Item",
    "ItemTooLarge",
    "LeaseNotHeld",
    "LeaseRead",
    "MemoryStore",
    "Metric",
    "ServerChange",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "TtlDeadline",
    "TtlItem",
    "WriteOutcomeUnknown",
    "backend_for",
    "item_bytes",
    "make_store",
    "str_bytes",
    "utf8_len",
]
