"""Reading parameters off the wire: query strings, form bodies and JSON bodies.

Strict (UTF-8 only, JSON bodies too; a name given twice in a JSON object refused) and
bounded: parsing any request holds at most about three times its size, and a JSON body's
parameter count and nesting are checked on its structure before json.loads builds anything.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, Mapping
from urllib.parse import unquote_to_bytes

from .errors import (
    DuplicateParameter,
    InvalidEncoding,
    InvalidJson,
    InvalidParameter,
    Refusal,
    TooManyParameters,
)

# Percent-decoding works on pieces this long: unquote_to_bytes lists every escape.
UNQUOTE_CHUNK = 64 * 1024
# A JSON body's structure: nesting a /batch of lists of values needs 3 levels.
MAX_JSON_DEPTH = 8
# Commas and colons per parameter (a name's colon, a comma after it; a batch entry's verb).
JSON_TOKENS_PER_FIELD = 8
_BRACKETS = re.compile(rb"[\[\]{}]")
BACKSLASH = ord("\\")
# UTF-32's marks start with these (little-endian) or with a NUL (big-endian).
_UTF16_BYTE_ORDER_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def parse_form(data: bytes, max_fields: int) -> dict[str, list[str]]:
    """Parse `a=1&b=2` (the query string's bytes, or a form body) strictly as UTF-8.

    Not parse_qsl: it decodes with replacement characters, where a parameter that is not
    UTF-8 must be refused. Fields are cut one at a time and percent-decoded in chunks, so
    parsing holds about twice the request's size at most (a list of every escape held
    80 times the size: a 6 MiB form body of %41 took 470 MiB).
    """
    values: dict[str, list[str]] = {}
    if not data:
        return values
    if data.count(b"&") >= max_fields:
        raise TooManyParameters(f"more than {max_fields} parameters")
    try:
        if len(data) <= UNQUOTE_CHUNK and b"%" not in data and b"+" not in data:
            # Nearly every query string: short, nothing to decode. One decode and plain
            # splits take a sixth of the time of the general loop below.
            for field in data.decode("utf-8").split("&"):
                if field:
                    name, _, value = field.partition("=")
                    values.setdefault(name, []).append(value)
            return values
    except UnicodeDecodeError:
        raise InvalidEncoding("parameters must be valid UTF-8") from None
    start = 0
    try:
        while start <= len(data):
            end = data.find(b"&", start)
            if end == -1:
                end = len(data)
            if end > start:
                equals = data.find(b"=", start, end)
                if equals == -1:
                    name, value = _unquote(data, start, end), ""
                else:
                    name, value = _unquote(data, start, equals), _unquote(data, equals + 1, end)
                values.setdefault(name, []).append(value)
            start = end + 1
    except UnicodeDecodeError:
        raise InvalidEncoding("parameters must be valid UTF-8") from None
    return values


def _unquote(data: bytes, start: int, end: int) -> str:
    """Decode data[start:end], one form-encoded field: '+' is a space, %XX a byte; the
    bytes must be UTF-8. A long field is decoded a chunk at a time, never copied whole."""
    if end - start <= UNQUOTE_CHUNK:  # nearly every field: one slice, most need no decoding
        field = data[start:end]
        if b"+" in field:
            field = field.replace(b"+", b" ")
        return (unquote_to_bytes(field) if b"%" in field else field).decode("utf-8")
    pieces = []
    while start < end:
        stop = min(start + UNQUOTE_CHUNK, end)
        if stop < end:
            escape = data.rfind(b"%", stop - 2, stop)
            stop = escape if escape > start else stop  # never cut an escape in two
        chunk = data[start:stop]
        if b"+" in chunk:
            chunk = chunk.replace(b"+", b" ")
        pieces.append(unquote_to_bytes(chunk) if b"%" in chunk else chunk)
        start = stop
    return b"".join(pieces).decode("utf-8")


def parse_json(body: bytes, max_fields: int) -> object:
    """Parse a JSON body, refusing one too large in structure before parsing, too deep."""
    _check_not_utf16_or_utf32(body)
    max_tokens = JSON_TOKENS_PER_FIELD * max_fields
    # Commas and colons counted over the whole body, strings included, bound those of the
    # structure: within the cap, the exact scan (a Python step per string, a third of a
    # /batch of 100 gets) is not needed, and the few objects json.loads can build from
    # so few separators are checked for depth once built.
    scanned = body.count(b",") + body.count(b":") > max_tokens
    if scanned:
        check_json_structure(body, max_tokens)
    try:
        document = json.loads(body, object_pairs_hook=_object_without_repeats)
    except Refusal:
        raise
    except UnicodeDecodeError:
        raise InvalidEncoding("the JSON body must be valid UTF-8") from None
    except (ValueError, RecursionError) as error:
        raise InvalidJson(f"the body is not valid JSON: {error}") from None
    if not scanned:
        _check_depth(document)
    return document


def _check_not_utf16_or_utf32(body: bytes) -> None:
    """Refuse a JSON body in UTF-16 or UTF-32, before anything reads its structure.

    JSON on a network is UTF-8 (RFC 8259 section 8.1), but json.loads(bytes) also takes
    UTF-16 and UTF-32, which it finds as this does (RFC 4627 section 3): a byte-order
    mark, or a NUL among the first four bytes, as JSON text starts with an ASCII
    character. The structure check reads the bytes as UTF-8, where no byte of a multi-byte
    character is a quote or a backslash. In UTF-16, an escaped quote (5C 00 22 00) looks
    unescaped to it and a character's high byte can look like a backslash (41 5C 22 00),
    so a body could hide its commas from the check and parse 270,000 parameters.
    Other bytes that are not UTF-8 are refused by json.loads (UnicodeDecodeError).
    """
    if body.startswith(_UTF16_BYTE_ORDER_MARKS) or 0 in body[:4]:
        raise InvalidEncoding("the JSON body must be UTF-8, not UTF-16 or UTF-32")


def _check_depth(document: object) -> None:
    """Refuse a parsed document nested deeper than MAX_JSON_DEPTH, a level at a time."""
    level = [document]
    for _ in range(MAX_JSON_DEPTH + 1):
        level = [node for node in level if isinstance(node, (list, dict))]
        if not level:
            return
        level = [
            child for node in level for child in (node.values() if isinstance(node, dict) else node)
        ]
    raise InvalidJson(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


def check_json_structure(body: bytes, max_tokens: int) -> None:
    """Refuse a body with more commas and colons, or more nesting, than parameters need.

    Counted outside strings only (a value may hold any number of them), before json.loads
    builds anything: 700,000 one-byte parameters in 6 MiB took 330 MiB and seconds.
    """
    tokens = depth = 0
    position = 0
    while position < len(body):
        quote = body.find(b'"', position)
        end = len(body) if quote == -1 else quote
        tokens += body.count(b",", position, end) + body.count(b":", position, end)
        if tokens > max_tokens:
            raise TooManyParameters(f"more than {max_tokens // JSON_TOKENS_PER_FIELD} parameters")
        for bracket in _BRACKETS.finditer(body, position, end):
            depth += 1 if bracket.group() in b"[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        if quote == -1:
            return
        position = _string_end(body, quote + 1) + 1


def _string_end(body: bytes, start: int) -> int:
    """The index of the quote that closes the JSON string starting at `start`."""
    while True:
        quote = body.find(b'"', start)
        if quote == -1:
            return len(body)  # unterminated: json.loads says so
        backslashes = 0
        while quote - backslashes - 1 >= start and body[quote - backslashes - 1] == BACKSLASH:
            backslashes += 1
        if backslashes % 2 == 0:
            return quote
        start = quote + 1


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a name given twice is refused, as a repeated query parameter is."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise DuplicateParameter(f"parameter {repeated!r} was given more than once")
    return document


# -- JSON bodies ------------------------------------------------------------------------------


def params_from_json(document: Mapping[str, Any], max_fields: int) -> dict[str, list[str]]:
    """Turn a JSON object into params: strings as is, integers in base 10, lists as repeats.

    At most `max_fields` values in all, as for a form or a query string.
    """
    values: dict[str, list[str]] = {}
    count = 0
    for name, raw in document.items():
        items = raw if isinstance(raw, list) else [raw]
        count += len(items)
        if count > max_fields:
            raise TooManyParameters(f"more than {max_fields} parameters")
        values[name] = [_json_param(name, item) for item in items]
    return values


def _json_param(name: str, item: Any) -> str:
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEncoding(
                f"parameter {name!r} is not valid UTF-8 (a lone surrogate)"
            ) from None
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    raise InvalidParameter(
        f"parameter {name!r} must be a string or an integer, got {type(item).__name__}"
    )
