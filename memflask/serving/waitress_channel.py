"""waitress's connection, bounded: a client that does not read holds no thread, framing is strict.

waitress 3.0 lets one connection that never reads its answers hold a request thread
forever: past its output high-water mark, the thread writing the answer (or starting the
next pipelined request) waits for the client with no timeout, and `channel_timeout`
spares a connection while it has a request. As many such clients as `THREADS` lock the
server. Here a request thread never waits for a client: a connection's next request is
put aside until its output drains below the mark, and the I/O loop, not a thread, starts
it then. A connection whose output makes no progress for `channel_timeout` is closed.

So a connection holds at most `outbuf_high_watermark` bytes of earlier answers plus the
one answer being written (answers are bounded by the app), in memory up to waitress's
`outbuf_overflow` and in a temporary file past it.
"""

from __future__ import annotations

import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError


class StrictFramingParser(HTTPRequestParser):
    """waitress's request parser, refusing a request framed both by length and by chunks.

    waitress reads such a request's body by its Transfer-Encoding and keeps the connection
    open, so bytes that a proxy framing by Content-Length took for the body run here as a
    request of their own (request smuggling). RFC 9112 section 6.1 lets a server refuse the
    request and says it must close the connection: a ParsingError is waitress's 400, after
    which it closes the connection and drops whatever the client pipelined behind it.
    """

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # waitress pops an HTTP/1.1 Transfer-Encoding (leaving self.chunked) and ignores
        # an HTTP/1.0 one, which stays among the headers.
        framed_by_chunks = self.chunked or "TRANSFER_ENCODING" in self.headers
        if framed_by_chunks and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("Content-Length and Transfer-Encoding together are refused")


class BoundedOutputChannel(HTTPChannel):
    """waitress's connection, whose request threads never wait for the client to read."""

    parser_class = StrictFramingParser
    # A request is waiting for this connection's output to drain below the high-water
    # mark; read and written under outbuf_lock.
    _next_request_waits = False

    def _flush_outbufs_below_high_watermark(self) -> None:
        # waitress calls this from a request thread, before each write and between
        # pipelined requests, and waits there until the client reads. Never wait: write_soon
        # flushes what the socket takes and wakes the loop for the rest, and service() below
        # puts the next request aside while the output is above the mark.
        return

    def service(self) -> None:
        with self.outbuf_lock:
            if self.connected and self.total_outbufs_len > self.adj.outbuf_high_watermark:
                self._next_request_waits = True  # handle_write starts it once drained
                return
        super().service()

    def handle_write(self) -> None:
        super().handle_write()
        with self.outbuf_lock:
            drained = self.total_outbufs_len <= self.adj.outbuf_high_watermark
            if self._next_request_waits and self.connected and drained:
                self._next_request_waits = False
                self.server.add_task(self)

    def handle_close(self) -> None:
        super().handle_close()
        with self.requests_lock:
            if self._next_request_waits:
                # No thread serves this connection any more: release the requests' bodies
                # (temporary files past waitress's inbuf_overflow) as a finished task would.
                self._next_request_waits = False
                for request in self.requests:
                    request.close()
                self.requests = []


def close_stalled_connections(server: Any, now: float) -> None:
    """Close every connection whose output made no progress for waitress's channel_timeout.

    waitress closes an idle connection only once it has no request and can write (it
    flags it and waits for the socket to take bytes), so a client that never reads kept
    its connection and its output for good. Call from the I/O loop's thread.
    """
    cutoff = now - server.adj.channel_timeout
    for channel in list(server.active_channels.values()):
        if channel.total_outbufs_len and channel.last_activity < cutoff:
            channel.handle_close()


def stalled_connections_sweeper(server: Any, every_seconds: float = 1.0) -> Any:
    """A function for the I/O loop: close_stalled_connections at most every `every_seconds`."""
    next_sweep = 0.0

    def sweep() -> None:
        nonlocal next_sweep
        now = time.time()  # waitress's last_activity is wall-clock time
        if now >= next_sweep:
            next_sweep = now + every_seconds
            close_stalled_connections(server, now)

    return sweep
