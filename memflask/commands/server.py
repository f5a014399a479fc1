"""Verbs about the server itself: stats."""

from __future__ import annotations

import time

from .. import __version__
from ..registry import default_registry
from ..store import Store
from .base import Command, Context, Params, Result


@default_registry.register
class Stats(Command):
    """Answer the store's counters plus per-verb command counts, uptime and version."""

    name = "stats"

    def validate(self, params: Params) -> Context:
        return params.context

    def apply(self, store: Store, context: Context) -> Result:
        stats = store.stats()
        stats["commands"] = context.counts.snapshot()
        stats["uptime"] = int(time.monotonic() - context.started)
        stats["version"] = __version__
        return Result(200, data=stats)
