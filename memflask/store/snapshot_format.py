"""The snapshot file's format (memflask/store/snapshot.py tells its story): its header and
item lines, written and read, and the checks each item passes before it is restored.
Reading holds one line at a time, never one longer than the longest item the limits allow.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from typing import IO, Any, Iterator, Optional

from ..limits import KIB, MIB

FORMAT = "memflask-snapshot"
VERSION = 2


# A version 1 file is parsed whole, so it is read only up to this size.
MAX_VERSION_1_BYTES = 128 * MIB

# The version 2 header names the format, version and time: far below this.
MAX_HEADER_BYTES = 4 * KIB
# JSON may spell one byte of text as six (\u001f), and an item line adds brackets,
# quotes, commas, an expiry and the newline to its key and value.
JSON_BYTES_PER_TEXT_BYTE = 6
ITEM_LINE_OVERHEAD = 64
# How much of an over-long line is read at a time while skipping it.
SKIP_CHUNK_BYTES = 64 * KIB
# No expiry (Unix seconds) or version needs more digits: a longer integer is refused
# before int() spends quadratic time on it.
MAX_INTEGER_DIGITS = 20

VERSION_2_HEADER_END = b'"items":[\n'
END_OF_ITEMS = b"]}"

Entry = tuple[str, str, Optional[float]]


class SnapshotError(ValueError):
    """A snapshot file that cannot be read as one."""


class BadItem(ValueError):
    """One item that cannot be restored; its message is why, in a few words."""


def header_line() -> bytes:
    header = json.dumps(
        {"format": FORMAT, "version": VERSION, "saved_at": time.time()}, separators=(",", ":")
    )
    return header[:-1].encode("ascii") + b"," + VERSION_2_HEADER_END  # `}` becomes the items


def item_line(key: str, value: str, expires_at: Optional[float]) -> bytes:
    """One item as a line of JSON; ValueError if it cannot be one."""
    text = json.dumps(
        [key, value, expires_at], ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")  # strict: a lone surrogate raises UnicodeEncodeError


def why_unwritable(error: ValueError) -> str:
    if isinstance(error, UnicodeEncodeError):
        return "not UTF-8"
    return "expiry not finite"  # the one other ValueError of json.dumps(allow_nan=False)


class ItemChecker:
    """Checks items against the limits; counts the bad ones by reason."""

    def __init__(self, max_key_bytes: int, max_value_bytes: int):
        self.max_key_bytes = max_key_bytes
        self.max_value_bytes = max_value_bytes
        # The longest line a valid item can take, written by save().
        self.max_line_bytes = (
            JSON_BYTES_PER_TEXT_BYTE * (max_key_bytes + max_value_bytes) + ITEM_LINE_OVERHEAD
        )
        self.read = 0
        self.skipped: Counter[str] = Counter()

    def check(self, entry: Any) -> Optional[Entry]:
        """The item as (key, value, expires_at), or None (counted) if it is bad."""
        self.read += 1
        try:
            return check_item(entry, self.max_key_bytes, self.max_value_bytes)
        except BadItem as error:
            self.skipped[str(error)] += 1
            return None

    def check_line(self, line: bytes) -> Optional[Entry]:
        """Parse one item line of a version 2 file (its newline and comma removed)."""
        try:
            entry = _parse_json(line)
        except SnapshotError:
            self.read += 1
            self.skipped["not JSON"] += 1
            return None
        return self.check(entry)

    def skip(self, reason: str) -> None:
        self.read += 1
        self.skipped[reason] += 1


def check_item(entry: Any, max_key_bytes: int, max_value_bytes: int) -> Entry:
    """Return a snapshot item as (key, value, expires_at), or raise BadItem saying why.

    The same rules as a /set: a key of 1 to `max_key_bytes` UTF-8 bytes, a value of at
    most `max_value_bytes`, and an expiry that is null or a finite number of seconds.
    """
    if not (isinstance(entry, list) and len(entry) == 3):
        raise BadItem("not a [key, value, expiry] list")
    key, value, expires_at = entry
    if not isinstance(key, str):
        raise BadItem("key not text")
    if not key:
        raise BadItem("empty key")
    if _utf8_length(key, max_key_bytes, "key") > max_key_bytes:
        raise BadItem(f"key over {max_key_bytes} bytes")
    if not isinstance(value, str):
        raise BadItem("value not text")
    if _utf8_length(value, max_value_bytes, "value") > max_value_bytes:
        raise BadItem(f"value over {max_value_bytes} bytes")
    if expires_at is None:
        return key, value, None
    # bool is an int to Python, but `true` is no time.
    if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
        raise BadItem("expiry not a number")
    try:
        seconds = float(expires_at)
    except OverflowError:  # an integer past any float
        raise BadItem("expiry not finite") from None
    if not math.isfinite(seconds):  # NaN would stall expiry; Infinity breaks /ttl
        raise BadItem("expiry not finite")
    return key, value, seconds


def _utf8_length(text: str, limit: int, what: str) -> int:
    """Its length in strict UTF-8 (a lone surrogate is BadItem), or limit + 1 if over."""
    if len(text) > limit:  # every character takes a byte at least: over without encoding
        return limit + 1
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadItem(f"{what} not UTF-8") from None


def read_items(file: IO[bytes], checker: ItemChecker, max_version_1_bytes: int) -> Iterator[Entry]:
    """The file's valid items, in order; SnapshotError if it is not a snapshot."""
    first_line = file.readline(MAX_HEADER_BYTES)
    if first_line.endswith(VERSION_2_HEADER_END):
        header = _parse_json(first_line[: -len(b"\n")] + END_OF_ITEMS)
        _check_header(header, versions=(2,))
        yield from _read_version_2_items(file, checker)
    else:
        file.seek(0)
        yield from _read_version_1_items(file, checker, max_version_1_bytes)


def _read_version_2_items(file: IO[bytes], checker: ItemChecker) -> Iterator[Entry]:
    """One item a line, up to the line that ends the list."""
    while True:
        line = file.readline(checker.max_line_bytes)
        if not line:
            raise SnapshotError("cut short: the item list has no end")
        if not line.endswith(b"\n") and len(line) == checker.max_line_bytes:
            _skip_rest_of_line(file)
            checker.skip("longer than any item within the limits")
            continue
        line = line.rstrip(b"\n")
        if line == END_OF_ITEMS:
            return
        entry = checker.check_line(line[:-1] if line.endswith(b",") else line)
        if entry is not None:
            yield entry


def _skip_rest_of_line(file: IO[bytes]) -> None:
    while True:
        chunk = file.readline(SKIP_CHUNK_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


def _read_version_1_items(
    file: IO[bytes], checker: ItemChecker, max_version_1_bytes: int
) -> Iterator[Entry]:
    """The whole document at once, as memflask wrote before version 2: read whole."""
    too_large = SnapshotError(
        f"not version 2, and a version 1 snapshot is read whole only up to "
        f"{max_version_1_bytes} bytes (MAX_VERSION_1_BYTES)"
    )
    if os.fstat(file.fileno()).st_size > max_version_1_bytes:
        raise too_large
    content = file.read(max_version_1_bytes + 1)
    if len(content) > max_version_1_bytes:  # it grew since
        raise too_large
    document = _parse_json(content)
    del content
    # Version 2 too: the same document, its lines joined (by a JSON tool, say).
    _check_header(document, versions=(1, 2))
    items = document.get("items")
    if not isinstance(items, list):
        raise SnapshotError("no item list")
    for entry in items:
        checked = checker.check(entry)
        if checked is not None:
            yield checked


def _check_header(document: Any, versions: tuple[int, ...]) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SnapshotError("not a memflask snapshot")
    version = document.get("version")
    if type(version) is not int or version not in versions:
        expected = " or ".join(str(known) for known in versions)
        raise SnapshotError(f"snapshot version {version!r}, expected {expected}")


def _parse_json(text: bytes) -> Any:
    """json.loads, with every way it can fail as SnapshotError."""
    try:
        return json.loads(text, parse_int=_parse_bounded_int)
    except RecursionError:  # nested deeper than the interpreter's stack allows
        raise SnapshotError("not JSON: nested too deep") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise SnapshotError(f"not JSON: {error}") from None


def _parse_bounded_int(digits: str) -> float:
    # Too long for any expiry or version: read as infinity, which check_item refuses.
    return int(digits) if len(digits) <= MAX_INTEGER_DIGITS else math.inf
