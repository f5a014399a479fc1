"""Warm restarts: the memory store saved to a versioned JSON file, and loaded at start.

The format is plain JSON, so loading one can never run code (no pickle). Version 2 is
written one item a line, so that it can be read a line at a time and stays valid JSON:

    {"format":"memflask-snapshot","version":2,"saved_at":1767225600.0,"items":[
    ["key","value",1767229200.0],
    ["other","value",null]
    ]}

Items are listed least recently used first and keep their absolute expiry times. An
item given a relative `ttl` (which runs by the monotonic clock, a process's own) is saved
as the Unix time its seconds left end at the save, as memcached converts its own clock's
expiries at a restart, and is loaded as an absolute expiry; the format is unchanged.
A save writes a temporary file beside the snapshot, fsyncs it and renames it over the
old one, so a crash mid-save leaves the previous snapshot whole (the next start removes
the temporary file it left). Writes made after the last save are lost on a crash: a
snapshot is a warm start, not durability.

A snapshot is input like any other, and never stops the server from starting:

- Each item is checked against the settings (a non-empty key of at most MAX_KEY_BYTES and
  a value of at most MAX_VALUE_BYTES, both strict UTF-8; an expiry that is null or a
  finite number). A bad item is skipped and counted in one warning; the rest is restored.
- A file that cannot be read as a snapshot at all (another format or version, not JSON,
  nested too deep, cut short) is moved aside (`<name>.corrupt-<time>`) with a warning,
  and the store starts empty. So is anything at the path but a regular file (a FIFO, a
  folder, a socket, a device), checked before it is opened: opening a FIFO would wait.
- Loading holds one line at a time, and no line longer than the longest item the limits
  allow: an over-long line is skipped in chunks, never held whole. The store's own caps
  bound the rest.

Why one item a line rather than a streaming JSON parser (ijson): such a parser still hands
over each string whole, so a 512 MiB value would still be held in full before any cap
could refuse it; reading lines with a length cap bounds memory with the standard library
alone. Version 1 files (the whole document on one line) are still read, whole, up to
MAX_VERSION_1_BYTES; a larger one is refused and moved aside. The next save writes
version 2.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO

from .. import limits
from .memory import MemoryStore
from .snapshot_format import (
    END_OF_ITEMS,
    FORMAT,
    MAX_VERSION_1_BYTES,
    ItemChecker,
    SnapshotError,
    header_line,
    item_line,
    read_items,
    why_unwritable,
)

__all__ = ["FORMAT", "load", "remove_stale_temporary_files", "save"]

# The name operators' logging settings know (the loader's and the saver's lines).
log = logging.getLogger("memflask.snapshot")


# -- saving -------------------------------------------------------------------------------------


def save(store: MemoryStore, path: Path) -> int:
    """Write the store's live items to `path` atomically; return how many.

    An item that cannot be written as UTF-8 JSON (a lone surrogate, a NaN expiry) is
    skipped with a warning, so one bad item never costs the others their save.
    """
    items = store.export()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    written = 0
    unwritable: Counter[str] = Counter()
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(header_line())
            separator = b""
            for key, value, expires_at in items:
                try:
                    line = item_line(key, value, expires_at)
                except ValueError as error:
                    unwritable[why_unwritable(error)] += 1
                    continue
                file.write(separator + line)
                separator = b",\n"
                written += 1
            file.write(b"\n" + END_OF_ITEMS + b"\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    if unwritable:
        log.warning("snapshot %s: %s could not be saved (%s)", path, *_tally(unwritable))
    return written


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- loading ------------------------------------------------------------------------------------


def load(
    store: MemoryStore,
    path: Path,
    *,
    max_key_bytes: int = limits.MAX_KEY_BYTES,
    max_value_bytes: int = limits.MAX_VALUE_BYTES,
    max_version_1_bytes: int = MAX_VERSION_1_BYTES,
) -> int:
    """Restore the items in `path` into a new, empty `store`; return how many it holds.

    Temporary files left by saves that were cut short are removed first. A missing file is
    an empty start. Expired items, and items that break the limits (`max_key_bytes`,
    `max_value_bytes`: the settings MAX_KEY_BYTES and MAX_VALUE_BYTES), are skipped; the
    bad ones are counted in a warning. A file that cannot be read as a snapshot is moved
    aside (`<name>.corrupt-<time>`) with a warning, and the store is left empty, so a bad
    file never stops the server from starting.
    """
    remove_stale_temporary_files(path)
    checker = ItemChecker(max_key_bytes, max_value_bytes)
    try:
        if not os.path.lexists(path):
            return 0
        with _open_regular_file(path) as file:
            # Items go into the store as they are read: memory follows the store's caps,
            # not the file's size. The store's lock is held meanwhile (no request yet).
            held = store.restore(read_items(file, checker, max_version_1_bytes))
    except Exception as error:  # whatever the file holds, start-up goes on
        store.flush()  # items restored before the failure: the warning says "empty"
        _move_aside(path, error)
        return 0
    if checker.skipped:
        log.warning("snapshot %s: skipped %s (%s)", path, *_tally(checker.skipped, "bad "))
    log.info("snapshot %s: restored %d of %d items", path, held, checker.read)
    return held


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


def _open_regular_file(path: Path) -> IO[bytes]:
    """Open `path` for reading; SnapshotError, never a wait, unless it is a regular file.

    A FIFO, a device, a socket or a folder at the path would block the start or never
    end: open() of a FIFO waits for a writer, forever (it did, before the old check that
    came after the open). Its type is checked before it is opened, and again on what was
    opened, without blocking, in case another file took its place in between.
    """
    _check_regular(os.stat(path).st_mode)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        _check_regular(os.fstat(descriptor).st_mode)
        # O_NONBLOCK changes nothing for a regular file's reads.
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for is_kind, name in _FILE_KINDS if is_kind(mode)), "special")
        raise SnapshotError(f"not a regular file: {kind}")


def _move_aside(path: Path, error: Exception) -> None:
    if isinstance(error, (SnapshotError, OSError)):
        reason = str(error)
    else:  # not a shape of file we know: keep the traceback for a bug report
        log.error("snapshot %s: unexpected error while loading", path, exc_info=error)
        reason = f"{type(error).__name__}: {error}"
    moment = int(time.time())
    aside = path.with_name(f"{path.name}.corrupt-{moment}")
    for attempt in range(2, 100):  # never over an earlier one of the same second
        if not os.path.lexists(aside):
            break
        aside = path.with_name(f"{path.name}.corrupt-{moment}-{attempt}")
    try:
        os.replace(path, aside)
    except OSError as move_error:
        log.error(
            "snapshot %s unreadable (%s), and it cannot be moved aside (%s); starting empty",
            path,
            reason,
            move_error,
        )
        return
    log.warning("snapshot %s unreadable (%s); moved to %s, starting empty", path, reason, aside)


def _tally(reasons: Counter[str], adjective: str = "") -> tuple[str, str]:
    """("2 bad items", "value over 1024 bytes: 1, key not UTF-8: 1"), for a warning."""
    total = sum(reasons.values())
    counted = f"{total} {adjective}{'item' if total == 1 else 'items'}"
    by_count = sorted(reasons.items(), key=lambda reason_count: (-reason_count[1], reason_count[0]))
    return counted, ", ".join(f"{reason}: {count}" for reason, count in by_count)
