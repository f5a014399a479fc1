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

from . import allocator, limits
from .store import MemoryStore, Store, snapshot

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
        self.saver: Optional[PeriodicSaver] = None
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
                self.saver = PeriodicSaver(
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


class PeriodicSaver:
    """Saves the store every `interval` seconds in a daemon thread, and once more on stop.

    A save is skipped, and says nothing, while the store has not changed since the last
    one (`MemoryStore.changes`): an idle cache writes no file and logs no line every
    interval. `saved_changes` is the store's `changes` that the file already holds (what
    it was right after loading it); None, the default, saves at the first chance.
    A failed save is logged and tried again at the next interval; it never ends the
    thread nor a clean stop.
    """

    def __init__(
        self,
        store: MemoryStore,
        path: Path,
        interval: float,
        *,
        saved_changes: Optional[int] = None,
    ):
        self.store, self.path, self.interval = store, path, interval
        self._saved_changes = saved_changes
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memflask-snapshot", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save a last time (a clean shutdown), if anything changed."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        if not self._save():
            snapshot.log.info("snapshot %s: unchanged since the last save", self.path)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._save()

    def _save(self) -> bool:
        """Save unless nothing changed since the last save; False if skipped."""
        # Read before the export: a write in between is saved now, and again next time.
        changes = self.store.changes
        if changes == self._saved_changes:
            return False
        try:
            count = snapshot.save(self.store, self.path)
        except Exception:  # a full disk, or a bug: the cache stays up, the next save retries
            snapshot.log.exception("snapshot %s: save failed", self.path)
            return True
        self._saved_changes = changes
        snapshot.log.info("snapshot %s: saved %d items", self.path, count)
        return True
