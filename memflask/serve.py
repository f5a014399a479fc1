"""Serving memflask with waitress: shared settings, and a graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Mapping

import waitress
from flask import Flask
from waitress import wasyncore

KIB = 1024
# How long a stop waits for in-flight requests to be answered before closing anyway.
DRAIN_SECONDS = 10.0

log = logging.getLogger(__name__)


def waitress_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return waitress's settings for an app's config (see README, "Serving")."""
    return {
        "host": config["HOST"],
        "port": config["PORT"],
        "threads": config["THREADS"],
        "ident": "memflask",
        # A query-string value arrives percent-encoded, up to 3 bytes per value byte, and
        # must fit in waitress's header limit (its 256 KiB default refuses a 1 MiB value).
        "max_request_header_size": 3 * config["MAX_VALUE_BYTES"] + 64 * KIB,
        "max_request_body_size": config["MAX_CONTENT_LENGTH"],
    }


class GracefulServer:
    """waitress on an app's settings, stopped gracefully from any thread by `stop()`.

    waitress.serve stops its I/O loop at once on Ctrl-C, so responses still queued for
    sending are lost. Here the loop keeps turning after `stop()`, with the listening
    socket closed, until every received request is answered and flushed (at most
    DRAIN_SECONDS), so a deploy's SIGTERM loses no acknowledged write. The loop's own
    thread closes every socket, so no other thread pulls a socket from under select().
    """

    def __init__(self, app: Flask, **overrides: Any):
        self.server = waitress.create_server(app, **{**waitress_options(app.config), **overrides})
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server.effective_port

    def stop(self) -> None:
        """Ask `run` to finish what is in flight and return; safe from signal handlers."""
        if not self._stopping.is_set():
            self._stopping.set()
            self.server.pull_trigger()  # wake the loop now rather than at its next timeout

    def run(self) -> None:
        while not self._stopping.is_set():
            self._turn(self.server.adj.asyncore_loop_timeout)
        log.info("stopping: finishing requests in flight")
        wasyncore.dispatcher.close(self.server)  # stop accepting; the trigger and channels stay
        deadline = time.monotonic() + DRAIN_SECONDS
        while _in_flight(self.server) and time.monotonic() < deadline:
            self._turn(0.05)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=DRAIN_SECONDS)
        # handle_close, not close_all's bare close: a channel releases its buffers
        # (temporary files for large bodies) only there.
        for dispatcher in list(self.server._map.values()):
            dispatcher.handle_close()
        log.info("stopped")

    def _turn(self, timeout: float) -> None:
        wasyncore.loop(
            timeout=timeout,
            map=self.server._map,
            use_poll=self.server.adj.asyncore_use_poll,
            count=1,
        )


def serve(app: Flask) -> None:
    """Serve `app` until SIGTERM or SIGINT, then answer what is in flight and return."""
    server = GracefulServer(app)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: server.stop())
    server.server.print_listen("memflask serving on http://{}:{}")
    server.run()
    snapshots = app.extensions["memflask"].snapshots
    if snapshots is not None:
        snapshots.stop()  # the last save, after the last request was answered


def _in_flight(server: Any) -> bool:
    """Whether any connection has a received request unanswered or a response unsent."""
    return any(
        channel.requests or channel.total_outbufs_len
        for channel in list(server.active_channels.values())
    )
