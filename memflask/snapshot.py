"""Warm restarts: the memory store saved to a versioned JSON file, and loaded at start.

The format is plain JSON, so loading one can never run code (no pickle):

    {"format": "memflask-snapshot", "version": 1, "saved_at": 1767225600.0,
     "items": [["key", "value", 1767229200.0], ["other", "value", null], ...]}

Items are listed least recently used first and keep their absolute expiry times.
A save writes a temporary file beside the snapshot, fsyncs it and renames it over the
old one, so a crash mid-save leaves the previous snapshot whole (the next start removes
the temporary file it left). Writes made after the last save are lost on a crash: a
snapshot is a warm start, not durability.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .store import MemoryStore

FORMAT = "memflask-snapshot"
VERSION = 1

log = logging.getLogger(__name__)


class SnapshotError(ValueError):
    """A snapshot file that cannot be read as one."""


def save(store: MemoryStore, path: Path) -> int:
    """Write the store's live items to `path` atomically; return how many."""
    items = store.export()
    document = {"format": FORMAT, "version": VERSION, "saved_at": time.time(), "items": items}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return len(items)


def load(store: MemoryStore, path: Path) -> int:
    """Restore the items in `path` into `store` (expired ones dropped); return how many.

    Temporary files left by saves that were cut short are removed first. A missing file is
    an empty start. A file that cannot be read as a snapshot is moved aside
    (`<name>.corrupt-<time>`) with a warning, and the store starts empty, so a bad file
    never stops the server from starting.
    """
    remove_stale_temporary_files(path)
    if not path.exists():
        return 0
    try:
        items = _read(path)
    except (OSError, SnapshotError) as error:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, aside)
        log.warning("snapshot %s unreadable (%s); moved to %s, starting empty", path, error, aside)
        return 0
    restored = store.restore(items)
    log.info("snapshot %s: restored %d of %d items", path, restored, len(items))
    return restored


def remove_stale_temporary_files(path: Path) -> int:
    """Remove the temporary files of saves to `path` that never finished; return how many.

    Run at start, before the saver: no save of this process is under way, so each such
    file was left by one that was killed mid-way.
    """
    # tempfile.mkstemp(prefix=".<name>.") adds 8 characters from this alphabet.
    temporary_name = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}")
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:  # no folder yet: nothing was ever saved there
        return 0
    for entry in entries:
        if not temporary_name.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError as error:
            log.warning("snapshot %s: cannot remove temporary file %s: %s", path, entry.path, error)
    if removed:
        log.info("snapshot %s: removed %d temporary files of interrupted saves", path, removed)
    return removed


def _read(path: Path) -> list[tuple[str, str, Optional[float]]]:
    try:
        document: Any = json.loads(path.read_bytes())
    except ValueError as error:  # not JSON, or not UTF-8
        raise SnapshotError(f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SnapshotError("not a memflask snapshot")
    if document.get("version") != VERSION:
        raise SnapshotError(f"snapshot version {document.get('version')!r}, expected {VERSION}")
    items = document.get("items")
    if not isinstance(items, list):
        raise SnapshotError("no item list")
    for entry in items:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and (entry[2] is None or isinstance(entry[2], (int, float)))
        ):
            raise SnapshotError(f"malformed item {str(entry)[:80]}")
    return [(key, value, expires_at) for key, value, expires_at in items]


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class PeriodicSaver:
    """Saves the store every `interval` seconds in a daemon thread, and once more on stop.

    A failed save is logged and tried again at the next interval; it never ends the
    thread nor a clean stop.
    """

    def __init__(self, store: MemoryStore, path: Path, interval: float):
        self.store, self.path, self.interval = store, path, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memflask-snapshot", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save a last time (a clean shutdown)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._save()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._save()

    def _save(self) -> None:
        try:
            count = save(self.store, self.path)
            log.info("snapshot %s: saved %d items", self.path, count)
        except Exception:  # a full disk, or a bug: the cache stays up, the next save retries
            log.exception("snapshot %s: save failed", self.path)
