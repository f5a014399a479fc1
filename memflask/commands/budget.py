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


# JSON's constants, by their exact size.
CONSTANT_SIZES = {None: 4, True: 4, False: 5}


def json_bounds(data: Any) -> tuple[int, int]:
    """The least and the most JSON bytes `data` takes, strings left unencoded.

    Written for speed on a /batch's results (small dicts of ints and strings): no
    encoding, and a number's size is exact.
    """
    kind = data.__class__
    if kind is str:
        most = ASCII_CHAR_MOST if data.isascii() else OTHER_CHAR_MOST
        return len(data) + 2, most * len(data) + 2
    if kind is int:
        size = len(repr(data))
        return size, size
    if kind is dict or kind is list or kind is tuple:
        # The brackets and the commas between members; a dict's `"name":` before each.
        least = most = 1 + len(data) if data else 2
        if kind is dict:
            for name, value in data.items():
                # Inline for names and strings: a call per member costs more than the rest.
                name = name if name.__class__ is str else str(name)
                least += len(name) + 3  # its quotes and the colon
                most += (ASCII_CHAR_MOST if name.isascii() else OTHER_CHAR_MOST) * len(name) + 3
                if value.__class__ is str:
                    least += len(value) + 2
                    most += (ASCII_CHAR_MOST if value.isascii() else OTHER_CHAR_MOST) * len(
                        value
                    ) + 2
                else:
                    value_least, value_most = json_bounds(value)
                    least += value_least
                    most += value_most
        else:
            for value in data:
                value_least, value_most = json_bounds(value)
                least += value_least
                most += value_most
        return least, most
    if data is None or data is True or data is False:
        size = CONSTANT_SIZES[data]
        return size, size
    size = json_size(data)  # a float, or a type json.dumps may refuse: as it does
    return size, size
