"""What a command may need besides the store: the app's registry, its counters and limits."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple

from .. import limits

if TYPE_CHECKING:
    from .registry import Registry

# Parameters one request may carry beyond MAX_BATCH keys: enough for the largest /mget.
EXTRA_FIELDS = 64


class CommandCounts:
    """Per-verb command counters, safe to bump from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, verb: str) -> None:
        with self._lock:
            self._counts[verb] = self._counts.get(verb, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


class Context(NamedTuple):
    """Per-app settings and state that commands may need besides the store."""

    registry: Registry
    counts: CommandCounts
    max_key_bytes: int = limits.MAX_KEY_BYTES
    max_value_bytes: int = limits.MAX_VALUE_BYTES
    max_batch: int = limits.MAX_BATCH
    started: float = 0.0  # time.monotonic() at start-up
    max_answer_bytes: int = limits.MAX_ANSWER_BYTES  # /batch, /mget, /keys
    max_scan_keys: int = limits.MAX_SCAN_KEYS  # what a /batch's scans may examine

    @property
    def max_fields(self) -> int:
        """Parameters one request (or /batch entry) may carry, whatever the body kind."""
        return self.max_batch + EXTRA_FIELDS
