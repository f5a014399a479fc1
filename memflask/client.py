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

import time
from typing import Any, Iterator, Optional

import urllib3

from .deadlines import call_deadline, deadline_connection
from .protocol import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerBody,
    Call,
    Fields,
    MemflaskAnswerTooLarge,
    MemflaskAuthenticationError,
    MemflaskConnectionError,
    MemflaskError,
    MemflaskForbiddenError,
    MemflaskPreconditionFailed,
    MemflaskServerError,
    MemflaskTimeout,
    MemflaskValidationError,
    MemflaskValueTooLarge,
    Value,
    Verbs,
    check_answer_head,
    encode_request,
    error_from_answer,
)

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "Client",
    "MemflaskAnswerTooLarge",
    "MemflaskAuthenticationError",
    "MemflaskConnectionError",
    "MemflaskError",
    "MemflaskForbiddenError",
    "MemflaskPreconditionFailed",
    "MemflaskServerError",
    "MemflaskTimeout",
    "MemflaskValidationError",
    "MemflaskValueTooLarge",
    "Value",
]

# How much of an answer's body one read asks for.
READ_CHUNK_BYTES = 64 * 1024


class Client(Verbs):
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

    def _send(self, call: Call) -> Any:
        if call.verb is None:
            return call.result(0, b"")
        status, body = self._call(call.verb, call.fields, **call.options())
        return call.result(status, body)

    # -- the wire ------------------------------------------------------------------------

    def _call(
        self,
        verb: str,
        fields: Fields = None,
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
        body, headers = encode_request(fields, json_body, prefer_value, if_present)
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
        raise error_from_answer(response.status, data)

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
