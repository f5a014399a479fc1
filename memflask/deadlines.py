"""Deadlines on urllib3's connections: a call's `timeout` bounds the whole call.

urllib3's timeouts bound each socket operation: a server that sends a byte before each
read times out holds a call for ever, in the header block or in the body. Here the
connections of memflask.client.Client read every answer through a _DeadlineReader that
gives each read what is left of the call's deadline and no more, and send only while
time is left. urllib3 picks the pooled connection itself, so the call hands its deadline
over in a context variable (`call_deadline`), which the answer's reader keeps.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import io
import socket
import time
from typing import Any, Iterator, Optional

import urllib3.connection

# The deadline (time.monotonic()) of the call this thread or task is making, or None.
_DEADLINE: contextvars.ContextVar[Optional[float]] = contextvars.ContextVar(
    "memflask_client_deadline", default=None
)


@contextlib.contextmanager
def call_deadline(timeout: Optional[float]) -> Iterator[Optional[float]]:
    """Within this block, connections send and read until `timeout` seconds from now."""
    deadline = None if timeout is None else time.monotonic() + timeout
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def deadline_connection(scheme: str) -> type:
    """The urllib3 connection class, for "http" or "https", that keeps the deadlines."""
    return _DEADLINE_CONNECTIONS[scheme]


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("the call's deadline has passed")
    return left


class _DeadlineReader(io.RawIOBase):
    """The socket as http.client reads an answer, each read bounded by the time left.

    It also notes the end of the stream: http.client takes it for the end of a header
    block, and would serve a header block cut short as a whole answer.
    """

    def __init__(self, sock: socket.socket, deadline: Optional[float]):
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        if self._deadline is not None:
            self._sock.settimeout(_time_left(self._deadline))
        count = self._raw.readinto(buffer)
        self.ended = self.ended or count == 0
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's answer, read through a _DeadlineReader with the call's deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # http.client's own reader, not read from yet
        self._reader = _DeadlineReader(sock, _DEADLINE.get())
        self.fp = io.BufferedReader(self._reader)

    def begin(self) -> None:
        super().begin()
        if self._reader.ended:  # http.client would serve what came as a whole answer
            raise http.client.RemoteDisconnected("the answer's header block was cut short")


class _DeadlineSending:
    """A connection whose sends wait only for what is left of the call's deadline."""

    response_class = _DeadlineResponse

    def send(self, data: Any) -> None:
        deadline = _DEADLINE.get()
        if deadline is not None and self.sock is not None:  # type: ignore[attr-defined]
            self.sock.settimeout(_time_left(deadline))  # type: ignore[attr-defined]
        super().send(data)  # type: ignore[misc]


class _DeadlineHTTPConnection(_DeadlineSending, urllib3.connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineSending, urllib3.connection.HTTPSConnection):
    pass


_DEADLINE_CONNECTIONS = {"http": _DeadlineHTTPConnection, "https": _DeadlineHTTPSConnection}
