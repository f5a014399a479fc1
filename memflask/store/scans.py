"""Scans of the keyspace (/keys, /flush?prefix=): the cursor rule and the costs they bound.

Both stores give /keys cursors sealed the same way: `<position>.<tag>`, where the
position is the store's own (a memory scan's id and offset, a Redis SCAN cursor) and the
tag an HMAC-SHA256 of the position and the scan's prefix under the store's secret key.
So a cursor is short (MAX_CURSOR_CHARS), only ever parsed once its tag holds, tied to
its prefix (given with another it is refused), and cannot be forged or guessed: a client
can neither end nor read another client's scan by making up a cursor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from typing import Optional

# The longest cursor accepted: the longest a store gives (a 20-digit Redis cursor, or a
# cluster primary's index and its cursor, or a memory scan's id and offset) and its tag.
MAX_CURSOR_CHARS = 128
# The tag's length: 16 bytes of the HMAC (128 bits), base64url without padding.
TAG_CHARS = 22
# A /keys page examines up to this many keys per key it may answer: enough that a page of
# a prefix holding a tenth of the keys comes back full, few enough that a page's work is
# bounded by its limit, as Redis's SCAN COUNT bounds it.
EXAMINED_PER_LISTED = 10
# Scans a memory store keeps going at once; a new one lets the oldest go (its next page
# answers UnknownCursor). Each holds its key list: 8 bytes a key held when it started.
MAX_SCANS = 8


class UnknownCursor(LookupError):
    """A scan cursor the store did not give, one given for another prefix, one too long,
    or one whose scan it has since let go."""


def page_examines(limit: int) -> int:
    """The most keys one /keys page of `limit` examines."""
    return limit * EXAMINED_PER_LISTED


class CursorSeal:
    """Seals a store's scan position into a cursor for one prefix, and opens it again."""

    def __init__(self, secret: Optional[bytes] = None):
        self.secret = secrets.token_bytes(32) if secret is None else secret

    def _tag(self, prefix: str, position: str) -> str:
        message = f"{len(prefix)}:{prefix}:{position}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def seal(self, prefix: str, position: str) -> str:
        """The cursor a client passes back to go on from `position` of `prefix`'s scan."""
        return f"{position}.{self._tag(prefix, position)}"

    def open(self, prefix: str, cursor: str) -> str:
        """The position `cursor` was sealed with for `prefix`; raise UnknownCursor if it
        was not (too long, forged, altered, or given for another prefix)."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise UnknownCursor(
                f"a cursor is at most {MAX_CURSOR_CHARS} characters; this one is not one "
                "memflask gave: start again with no cursor"
            )
        position, dot, tag = cursor.rpartition(".")
        if not (dot and position and cursor.isascii()) or not hmac.compare_digest(
            tag, self._tag(prefix, position)
        ):
            raise UnknownCursor(
                f"unknown cursor {cursor[:40]!r}: not one this server gave for prefix "
                f"{prefix[:40]!r}; start again with no cursor"
            )
        return position


class ScanSnapshots:
    """The key lists of a memory store's scans in progress, oldest let go first.

    A scan's id is random (a forged cursor is refused by its seal already; the id keeps
    scans apart). Thread-safe.
    """

    def __init__(self, limit: int = MAX_SCANS):
        self.limit = limit
        self._lock = threading.Lock()
        self._scans: OrderedDict[str, list[str]] = OrderedDict()

    def add(self, keys: list[str]) -> str:
        """Keep `keys` for a new scan; return its id."""
        scan_id = secrets.token_hex(8)
        with self._lock:
            self._scans[scan_id] = keys
            while len(self._scans) > self.limit:
                self._scans.popitem(last=False)
        return scan_id

    def get(self, scan_id: str) -> Optional[list[str]]:
        with self._lock:
            return self._scans.get(scan_id)

    def drop(self, scan_id: str) -> None:
        with self._lock:
            self._scans.pop(scan_id, None)
