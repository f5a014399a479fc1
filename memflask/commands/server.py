"""Verbs about the server itself: stats."""

from __future__ import annotations

import time

from .. import __version__
from ..store import EVICTION_POLICIES, STATS_FIELDS, Store
from .base import Command
from .context import Context
from .params import Params
from .result import Result, json_content

STATS_SCHEMA = {
    "type": "object",
    "required": [*STATS_FIELDS, "uptime", "commands", "version", "eviction"],
    "properties": {
        **{name: {"type": "integer", "minimum": 0} for name in [*STATS_FIELDS, "uptime"]},
        "commands": {"type": "object", "additionalProperties": {"type": "integer"}},
        "version": {"type": "string"},
        "eviction": {"type": "string", "enum": [*EVICTION_POLICIES, "redis"]},
    },
}


class Stats(Command):
    """Answer the store's counters plus per-verb command counts, uptime, version and the
    eviction policy.

    In a /batch's work budget (MAX_SCAN_KEYS) a stats costs what its store declares as
    STATS_EXAMINES: on Redis 16,384 (one script call on each of its 256 shards, each
    taken as 64 keys examined), so at most about 61 stats fit a batch besides its other
    scans; on the memory store nothing (its counters are kept as it goes).
    """

    name = "stats"
    answers = {200: json_content(STATS_SCHEMA)}

    def validate(self, params: Params) -> Context:
        return params.context

    def examines(self, store: Store, size: int, args: Context) -> int:
        return getattr(store, "STATS_EXAMINES", 0)

    def apply(self, store: Store, context: Context) -> Result:
        stats: dict = dict(store.stats())
        stats["commands"] = context.counts.snapshot()
        stats["uptime"] = int(time.monotonic() - context.started)
        stats["version"] = __version__
        stats["eviction"] = store.eviction
        return Result(200, data=stats)
