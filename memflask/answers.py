"""A server's answers as both clients read them: the typed errors a refusal raises (the
MemflaskError family, which memflask.client re-exports), and the bound on an answer's
size. Imports no HTTP library."""

from __future__ import annotations

import json
from typing import Mapping, Optional

from .limits import MIB

# The largest answer a client reads by default. A server with its default settings
# answers at most MAX_VALUE_BYTES (1 MiB) for /get and MAX_ANSWER_BYTES (16 MiB) for
# /mget, /batch and /keys: 64 MiB leaves room for a server whose limits were raised a
# little (raise this with them), and only a broken or hostile server meets it.
DEFAULT_MAX_ANSWER_BYTES = 64 * MIB


class MemflaskError(Exception):
    """The server refused a request; `status` and `code` say how (see the README's table)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class MemflaskValidationError(MemflaskError):
    """400: bad input (a key, value, expiry or integer the server refuses)."""


class MemflaskAuthenticationError(MemflaskError):
    """401: the server needs a token, or another one."""


class MemflaskForbiddenError(MemflaskError):
    """403: this Host or Origin may not use the server."""


class MemflaskPreconditionFailed(MemflaskError):
    """412: the item changed since the ETag the request named."""


class MemflaskValueTooLarge(MemflaskError):
    """413: the value (or the request) is over the server's limit."""


class MemflaskServerError(MemflaskError):
    """5xx, or an answer the client cannot read."""


class MemflaskConnectionError(MemflaskError):
    """No usable answer: the server is down, unreachable, too slow, or its answer is cut."""


class MemflaskTimeout(MemflaskConnectionError):
    """No complete answer before the call's deadline (`timeout` seconds)."""


class MemflaskAnswerTooLarge(MemflaskError):
    """The answer is over the client's `max_answer_bytes`: refused, not read whole."""


_ERRORS = {
    400: MemflaskValidationError,
    401: MemflaskAuthenticationError,
    403: MemflaskForbiddenError,
    412: MemflaskPreconditionFailed,
    413: MemflaskValueTooLarge,
}


def error_from_answer(status: int, body: bytes) -> MemflaskError:
    try:
        document = json.loads(body)
        code, message = document["error"], document["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "unreadable_answer", body[:200].decode("utf-8", "replace")
    kind = _ERRORS.get(status, MemflaskServerError if status >= 500 else MemflaskError)
    return kind(status, code, message)


def check_answer_head(headers: Mapping[str, str], limit: int) -> Optional[int]:
    """Refuse an answer before its body: one announced over `limit` bytes, or one in a
    Content-Encoding not asked for (its decoded size is unknown until decoded). Answer
    the announced Content-Length, if any.

    Like a cut or late answer, these are no usable answer: status 0, whatever the server's.
    """
    encoding = headers.get("Content-Encoding", "identity")
    if encoding.lower() != "identity":
        raise MemflaskServerError(0, "unreadable_answer", f"Content-Encoding {encoding!r}")
    length = headers.get("Content-Length", "")
    # Past 18 digits it is over any limit (and int() of thousands of digits is refused).
    if not (length.isascii() and length.isdigit()):
        return None
    if len(length) > 18 or int(length) > limit:
        raise _answer_too_large(limit)
    return int(length)


class AnswerBody:
    """An answer's body as its chunks arrive, refused as soon as it passes `limit` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _answer_too_large(self.limit)
        self._chunks.append(chunk)

    def whole(self) -> bytes:
        return b"".join(self._chunks)


def _answer_too_large(limit: int) -> MemflaskAnswerTooLarge:
    message = f"the answer is over max_answer_bytes ({limit:,} bytes); not read"
    return MemflaskAnswerTooLarge(0, "answer_too_large", message)
