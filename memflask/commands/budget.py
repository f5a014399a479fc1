"""What one request may answer and examine: MAX_ANSWER_BYTES and MAX_SCAN_KEYS.

Answers are sized as the pipeline writes them (json.dumps, compact, ASCII: a character
escaped as \\uXXXX takes 6 bytes, one outside the BMP 12), and sized *before* they are
kept: a result is measured on its own, never the whole answer built and then measured.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

JSON_SEPARATORS = (",", ":")
# The most JSON bytes one character takes, by the widest the string holds: an ASCII
# control character is \u00XX; a character outside the BMP two \uXXXX escapes.
ASCII_CHAR_MOST = 6
OTHER_CHAR_MOST = 12


def json_size(data: Any) -> int:
    """The exact size of `data` as the pipeline writes it (pipeline.json_bytes), newline aside."""
    return len(json.dumps(data, separators=JSON_SEPARATORS, sort_keys=True))


def string_size(text: str) -> int:
    """The exact JSON size of one string, quotes included (C speed, no Python loop)."""
    return len(encode_basestring_ascii(text))


def string_bounds(text: str) -> tuple[int, int]:
    """The least and the most JSON bytes `text` takes, quotes included, without encoding it."""
    most = ASCII_CHAR_MOST if text.isascii() else OTHER_CHAR_MOST
    return len(text) + 2, most * len(text) + 2


def json_bounds(data: Any) -> tuple[int, int]:
    """The least and the most JSON bytes `data` takes, strings left unencoded."""
    if isinstance(data, str):
        return string_bounds(data)
    if isinstance(data, dict):
        # The braces and the commas between members, then each `"name":value`.
        least = most = 1 + len(data) if data else 2
        for name, value in data.items():
            name_least, name_most = string_bounds(str(name))
            value_least, value_most = json_bounds(value)
            least += name_least + 1 + value_least
            most += name_most + 1 + value_most
        return least, most
    if isinstance(data, (list, tuple)):
        least = most = 1 + len(data) if data else 2
        for value in data:
            value_least, value_most = json_bounds(value)
            least += value_least
            most += value_most
        return least, most
    size = json_size(data)  # a number, true, false or null: a few bytes
    return size, size
