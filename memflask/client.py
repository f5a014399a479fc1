"""A Python client for a memflask server, with methods named as in pymemcache.

    from memflask.client import Client
    cache = Client("http://127.0.0.1:8000", token=None, timeout=5.0)
    cache.set("greeting", "hello", expire=60)   # expire: seconds from now, 0 = never
    cache.get("greeting")                       # "hello", or None when absent

Connections are kept alive and pooled (urllib3). Refusals raise a typed MemflaskError.

`timeout` is a deadline for the whole call: connecting, sending, the answer's header
block and its body. An answer over `max_answer_bytes` is refused (MemflaskAnswerTooLarge)
as soon as its Content-Length, or its count while reading, passes the limit.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Iterator, Mapping, Optional, Union
from urllib.parse import urlencode

import urllib3

from .deadlines import call_deadline, deadline_connection

Value = Union[str, int]

MIB = 1024 * 1024
# The largest answer a client reads by default. A server with its default settings
# answers at most MAX_VALUE_BYTES (1 MiB) for /get and MAX_ANSWER_BYTES (16 MiB) for
# /mget, /batch and /keys: 64 MiB leaves room for a server whose limits were raised a
# little (raise this with them), and only a broken or hostile server meets it.
DEFAULT_MAX_ANSWER_BYTES = 64 * MIB
# How much of an answer's body one read asks for.
READ_CHUNK_BYTES = 64 * 1024


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


class Client:
    """A pooled keep-alive client; safe to share between threads."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: Optional[str] = None,
        timeout: Optional[float] = 5.0,
        max_connections: int = 10,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ):
        """`timeout`: seconds one call may take in all (None: no limit);
        `max_answer_bytes`: the largest answer body read."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._pool = urllib3.connection_from_url(
            self.url,
            maxsize=max_connections,
            block=False,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
        )
        # Connections that send and read within each call's deadline (memflask.deadlines).
        self._pool.ConnectionCls = deadline_connection(self._pool.scheme)

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value, or `default` when the key is absent or expired."""
        status, body = self._call("get", {"key": key}, allowed=(404,))
        return default if status == 404 else body.decode("utf-8")

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """The values of the keys that hit."""
        keys = list(keys)
        if not keys:
            return {}
        return json.loads(self._call("mget", [("key", key) for key in keys])[1])

    def ttl(self, key: str) -> Optional[int]:
        """Seconds left before the key expires; None when it never does. KeyError if absent."""
        status, body = self._call("ttl", {"key": key}, allowed=(404,))
        if status == 404:
            raise KeyError(key)
        return json.loads(body)["ttl"]

    def stats(self) -> dict[str, Any]:
        return json.loads(self._call("stats", {})[1])

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store a value; `expire` is seconds from now (0: never), as in pymemcache."""
        self._call("set", {"key": key, "value": value, "ttl": expire})
        return True

    def set_many(self, values: Mapping[str, Value], expire: int = 0) -> list[str]:
        """Store many values in one /batch request; answer the keys that failed."""
        commands = [
            {"verb": "set", "key": key, "value": str(value), "ttl": expire}
            for key, value in values.items()
        ]
        if not commands:
            return []
        results = json.loads(self._call("batch", json_body=commands)[1])
        return [key for key, result in zip(values, results) if result["status"] != 204]

    def add(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store only if the key is absent; False when it exists."""
        status, _ = self._call("add", {"key": key, "value": value, "ttl": expire}, allowed=(409,))
        return status != 409

    def replace(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store only if the key is present; False when it is absent."""
        status, _ = self._call(
            "replace", {"key": key, "value": value, "ttl": expire}, allowed=(404,)
        )
        return status != 404

    def append(self, key: str, value: Value) -> bool:
        """Add after the current value (an absent key is set); the expiry is kept."""
        self._call("append", {"key": key, "value": value})
        return True

    def prepend(self, key: str, value: Value) -> bool:
        """Add before the current value (an absent key is set); the expiry is kept."""
        self._call("prepend", {"key": key, "value": value})
        return True

    def cas(self, key: str, value: Value, compare: str, expire: int = 0) -> bool:
        """Store if the current value equals `compare` (or the key is absent); else False."""
        fields = {"key": key, "value": value, "compare": compare, "ttl": expire}
        status, body = self._call("checkandset", fields, allowed=(400,))
        if status == 400:
            error = json.loads(body)
            if error["error"] != "compare_mismatch":
                raise MemflaskValidationError(400, error["error"], error["message"])
            return False
        return True

    checkandset = cas

    def incr(self, key: str, value: int = 1) -> int:
        """Add `value` to the stored integer and answer the result (absent: set to `value`)."""
        return int(self._call("increment", {"key": key, "value": value}, prefer_value=True)[1])

    def decr(self, key: str, value: int = 1) -> int:
        """Subtract `value` from the stored integer and answer the result (absent: `value`)."""
        return int(self._call("decrement", {"key": key, "value": value}, prefer_value=True)[1])

    def touch(self, key: str, expire: int = 0) -> bool:
        """Give the key a new expiry (seconds from now, 0: never); False when absent."""
        status, _ = self._call("touch", {"key": key, "ttl": expire}, allowed=(404,))
        return status != 404

    def delete(self, key: str) -> bool:
        """Remove the key; answer whether it was there (one atomic request: `If-Match: *`)."""
        status, _ = self._call("delete", {"key": key}, allowed=(412,), if_present=True)
        return status != 412

    def flush_all(self) -> bool:
        self._call("flush", {})
        return True

    # -- namespaces ----------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with `prefix` (not empty); answer how many."""
        if not prefix:
            raise ValueError("delete_prefix needs a prefix; flush_all() removes every key")
        return json.loads(self._call("flush", {"prefix": prefix})[1])["flushed"]

    def scan(self, prefix: str = "", cursor: str = "", limit: int = 100) -> tuple[list[str], str]:
        """One page of keys starting with `prefix` and the next cursor (empty: done)."""
        fields = {"prefix": prefix, "cursor": cursor, "limit": limit}
        page = json.loads(self._call("keys", fields)[1])
        return page["keys"], page["cursor"]

    def iter_keys(self, prefix: str = "", limit: int = 100) -> Iterator[str]:
        """Every key starting with `prefix`, following the cursor (as redis-py's scan_iter).

        A key present for the whole iteration comes at least once; one may come twice.
        """
        cursor = ""
        while True:
            keys, cursor = self.scan(prefix, cursor, limit)
            yield from keys
            if not cursor:
                return

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the wire ------------------------------------------------------------------------

    def _call(
        self,
        verb: str,
        fields: Union[Mapping[str, Value], list[tuple[str, Value]], None] = None,
        *,
        json_body: Optional[list] = None,
        allowed: tuple[int, ...] = (),
        prefer_value: bool = False,
        if_present: bool = False,
    ) -> tuple[int, bytes]:
        """POST one command (a form body, or JSON for /batch); raise for a refusal.

        `if_present` sends `If-Match: *`: the write applies only to a key that exists
        (412 otherwise).
        """
        body, headers = _request(fields, json_body, prefer_value, if_present)
        with call_deadline(self.timeout) as deadline:
            try:
                response = self._pool.urlopen(
                    "POST",
                    f"/{verb}",
                    body=body,
                    headers={**self._headers, **headers},
                    preload_content=False,
                    decode_content=False,
                )
                data = self._read_body(response)
            except urllib3.exceptions.HTTPError as error:
                raise self._no_answer(error, deadline) from error
        if response.status < 300 or response.status in allowed:
            return response.status, data
        raise _error(response.status, data)

    def _read_body(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """The answer's body, read in chunks and counted: over max_answer_bytes, refused
        (the connection is closed, not drained). A cut body raises urllib3's ProtocolError."""
        try:
            length = check_answer_head(response.headers, self.max_answer_bytes)
            if length is not None and not response.chunked:
                # http.client reads exactly `length` (within the limit) in one call.
                return response.read(decode_content=False)
            body = AnswerBody(self.max_answer_bytes)
            while True:
                chunk = response.read(READ_CHUNK_BYTES, decode_content=False)
                if not chunk:
                    return body.whole()
                body.add(chunk)
        except MemflaskError:
            response.close()  # the rest of the answer stays unread: not for the next call
            raise
        finally:
            response.release_conn()  # back to the pool (a closed one reconnects)

    def _no_answer(
        self, error: urllib3.exceptions.HTTPError, deadline: Optional[float]
    ) -> MemflaskConnectionError:
        # Decided by the clock: urllib3 reports a send that ran out of time as a
        # ProtocolError, and a read that did as a ReadTimeoutError.
        if deadline is not None and time.monotonic() >= deadline:
            message = f"no complete answer from {self.url} within {self.timeout:g} s"
            return MemflaskTimeout(0, "timeout", message)
        return MemflaskConnectionError(0, "connection_error", str(error))


def _request(
    fields: Union[Mapping[str, Value], list[tuple[str, Value]], None],
    json_body: Optional[list],
    prefer_value: bool,
    if_present: bool,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one command's POST (shared by Client and AsyncClient)."""
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"}
    else:
        body = urlencode(fields or {}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if prefer_value:
        headers["Prefer"] = "return=representation"
    if if_present:
        headers["If-Match"] = "*"
    return body, headers


def _error(status: int, body: bytes) -> MemflaskError:
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
