"""How the framework backends (memflask.caching, memflask.django) keep a Python value as
the text a memflask server stores: one format, so each reads what the other wrote.

- An int (not a bool) is its decimal text, so `incr`/`decr` run on the server.
- Anything else is pickled behind "!" (the bytes cachelib's RedisSerializer writes, and
  what Django's Redis backend does in spirit). As with every pickle-based cache, whoever
  can write to the cache can run code in the app that reads it: give the server a token,
  keep it on a trusted network.
- The server stores text: bytes that are UTF-8 text travel as they are, any others (a
  pickle) as BASE64_MARKER + base64.
"""

from __future__ import annotations

import base64
import binascii
import pickle
import re
from typing import Any, Union

PICKLE_MARKER = b"!"
# Marks stored text that is base64 of bytes that were not UTF-8 text.
BASE64_MARKER = "b64:"
# What the server counts as an integer; int() would also take " 7", "1_000" and "٣".
PLAIN_INTEGER = re.compile(rb"-?[0-9]+")


def dumps(value: Any) -> bytes:
    """The bytes for `value`: an int's decimal digits, anything else pickled."""
    if type(value) is int:  # not bool: True must come back as True, not 1
        return str(value).encode("ascii")
    return PICKLE_MARKER + pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Union[Any, str]:
    """The value `dumps` gave `data` for; text another client wrote comes back as text."""
    if data.startswith(PICKLE_MARKER):
        return pickle.loads(data[len(PICKLE_MARKER) :])  # trusted: see the module doc
    if PLAIN_INTEGER.fullmatch(data):
        return int(data)
    return data.decode("utf-8", "replace")


def text_of(data: bytes) -> str:
    """The text the server stores for `data`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith(BASE64_MARKER):
        return BASE64_MARKER + base64.b64encode(data).decode("ascii")
    return text


def data_of(text: str) -> bytes:
    """The bytes `text_of` stored as `text`."""
    if text.startswith(BASE64_MARKER):
        try:
            return base64.b64decode(text[len(BASE64_MARKER) :], validate=True)
        except binascii.Error:
            pass  # not base64: text another client wrote, read as it is
    return text.encode("utf-8")
