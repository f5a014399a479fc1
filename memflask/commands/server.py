"""Verbs about the server itself: stats."""

from __future__ import annotations

import time

from .. import __version__
from ..params import Params
from ..store import STATS_FIELDS, Store
from .base import Command, Context, Result, json_content

STATS_SCHEMA = {
    "type": "object",
    "required": [*STATS_FIELDS, "uptime", "commands", "version"],
    "properties": {
        **{name: {"type": "integer", "minimum": 0} for name in [*STATS_FIELDS, "uptime"]},
        "commands": {"type": "object", "additionalProperties": {"type": "integer"}},
        "version": {"type": "string"},
    },
}


class Stats(Command):
    """Answer the store's counters plus per-verb command counts, uptime and version."""

    name = "stats"
    answers = {200: json_content(STATS_SCHEMA)}

    def validate(self, params: Params) -> Context:
        return params.context

    def apply(self, store: Store, context: Context) -> Result:
        stats: dict = dict(store.stats())
        stats["commands"] = context.counts.snapshot()
        stats["uptime"] = int(time.monotonic() - context.started)
        stats["version"] = __version__
        return Result(200, data=stats)
