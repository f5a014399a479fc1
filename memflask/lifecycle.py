"""One owner of what runs beside the requests: the snapshot saver and the store's connections.

Two named phases, as uvicorn's Server has: `startup` (restore the snapshot, start the
saver) and `shutdown` (the last save after the last request, then close the store).
Both are safe to call more than once.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Optional

from . import allocator, limits, snapshot
from .store import MemoryStore, Store

log = logging.getLogger(__name__)


class Lifecycle:
    """Starts and stops an app's background parts."""

    def __init__(
        self,
        store: Store,
        snapshot_path: Optional[Path],
        snapshot_interval: float,
        *,
        max_key_bytes: int = limits.MAX_KEY_BYTES,
        max_value_bytes: int = limits.MAX_VALUE_BYTES,
    ):
        """`max_key_bytes` and `max_value_bytes` are the settings MAX_KEY_BYTES and
        MAX_VALUE_BYTES: a snapshot's items over them are not restored."""
        self.store = store
        self.snapshot_path = snapshot_path
        self.snapshot_interval = snapshot_interval
        self.max_key_bytes = max_key_bytes
        self.max_value_bytes = max_value_bytes
        self.saver: Optional[snapshot.PeriodicSaver] = None
        self.restored: Optional[int] = None  # items restored from the snapshot, when on
        self._lock = threading.Lock()
        self._started = self._stopped = False

    def startup(self) -> None:
        """Restore the last snapshot and start saving periodically (when snapshots are on)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            # Process-wide and idempotent: set before the server's threads make their arenas.
            allocator.return_freed_memory()
            if self.snapshot_path is not None and isinstance(self.store, MemoryStore):
                self.restored = snapshot.load(
                    self.store,
                    self.snapshot_path,
                    max_key_bytes=self.max_key_bytes,
                    max_value_bytes=self.max_value_bytes,
                )
                # Without a file (none yet, or moved aside) the store starts empty, as a
                # missing file restores: nothing to save until something changes. A file
                # is saved over once, even unchanged: so it loses the items its load
                # skipped (bad, expired, too large) and is written in the current version.
                unsaved = os.path.lexists(self.snapshot_path)
                self.saver = snapshot.PeriodicSaver(
                    self.store,
                    self.snapshot_path,
                    self.snapshot_interval,
                    saved_changes=None if unsaved else self.store.changes,
                )
                self.saver.start()

    def shutdown(self) -> None:
        """Save a last time (after the last request was answered) and close the store."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self.saver is not None:
                self.saver.stop()
            self.store.close()
