"""Serving memflask with waitress: shared settings, and a graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
import time
from typing import Any, Mapping

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from ..config import ConfigError
from ..limits import MIB
from ..log_filters import CONNECTION_LIMIT_LEFT, CONNECTION_LIMIT_REACHED, QUEUE_WARNINGS
from .common import (
    CONNECTION_LIMIT,
    DRAIN_SECONDS,
    request_head_limit,
    startup_line,
    token_in_clear_warning,
)
from .fd_limits import connections_that_fit
from .waitress_channel import BoundedOutputChannel, stalled_connections_sweeper

# A waitress connection's descriptors: its socket, a temporary file for a body past
# waitress's inbuf_overflow (512 KiB), and up to two for answers past its outbuf_overflow
# (1 MiB): the unread earlier ones and the one being written.
FDS_PER_CONNECTION = 4
# A connection's answers waiting for the client to read them, past which its next
# pipelined request waits (waitress's default is 16 MiB; see memflask.serving.waitress_channel).
OUTPUT_HIGH_WATERMARK = 1 * MIB
# A connection idle this long is closed (waitress's default is 120 s).
IDLE_SECONDS = 60

log = logging.getLogger(__name__)


def waitress_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return waitress's settings for an app's config (see README, "Serving")."""
    return {
        "host": config["HOST"],
        "port": config["PORT"],
        "threads": config["THREADS"],
        "ident": "memflask",
        "max_request_header_size": request_head_limit(config),
        "max_request_body_size": config["MAX_CONTENT_LENGTH"],
        # waitress's default of 100 connections let 100 idle or slow sockets lock every
        # other client out. A connection costs one file descriptor and a few KiB; select()
        # cannot watch descriptors past 1024, poll() can.
        # (GracefulServer fits it to the open-file limit.)
        "connection_limit": CONNECTION_LIMIT,
        "asyncore_use_poll": True,
        # Also how long a connection's unread output may make no progress before it is
        # closed (memflask.serving.waitress_channel).
        "channel_timeout": IDLE_SECONDS,
        "outbuf_high_watermark": OUTPUT_HIGH_WATERMARK,
    }


def allow_connection_limit() -> int:
    """Raise this process's open-file limit to what CONNECTION_LIMIT needs, if allowed.

    Returns the connections the limit leaves room for (see memflask.serving.fd_limits).
    """
    return connections_that_fit(CONNECTION_LIMIT, FDS_PER_CONNECTION)


class BodilessKeepAliveTask(WSGITask):
    """waitress's WSGI task, keeping an HTTP/1.1 connection open after a 204 or a 304.

    waitress 3.0 closes the connection after every answer without Content-Length, 204 and
    304 included, though these end with their headers (RFC 9110 forbids Content-Length on
    a 204). So every write opened a new connection, and requests pipelined behind it were
    dropped unanswered. Only that one decision changes: a client's `Connection: close`,
    HTTP/1.0 and waitress's error paths close as before.
    """

    _building_header = False

    def build_response_header(self) -> bytes:
        self._building_header = True
        try:
            return super().build_response_header()
        finally:
            self._building_header = False

    def set_close_on_finish(self) -> None:
        if (
            self._building_header
            and not self.has_body
            and self.version == "1.1"
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        ):
            return  # the answer is complete at the end of its headers: keep the connection
        super().set_close_on_finish()


def keep_alive_after_bodiless_answers() -> None:
    """Make every waitress server in this process keep connections open after 204 and 304.

    A class setting rather than a server's: `waitress-serve wsgi:app` builds its server
    itself, and wsgi.py can only act before that.
    """
    HTTPChannel.task_class = BodilessKeepAliveTask


class CannotListen(OSError):
    """The listen address is taken or not ours: said in one line, for the operator."""

    @classmethod
    def from_error(cls, error: OSError, options: Mapping[str, Any]) -> CannotListen:
        where = options.get("listen") or f"{options.get('host')}:{options.get('port')}"
        if error.errno == errno.EADDRINUSE:
            return cls(f"cannot listen on {where}: port {options.get('port', where)} is in use")
        return cls(f"cannot listen on {where}: {error.strerror or error}")


class GracefulServer:
    """waitress on an app's settings, stopped gracefully from any thread by `stop()`.

    waitress.serve stops its I/O loop at once on Ctrl-C, so responses still queued for
    sending are lost. Here the loop keeps turning after `stop()`, with the listening
    socket closed, until every received request is answered and flushed (at most
    DRAIN_SECONDS), so a deploy's SIGTERM loses no acknowledged write. The loop's own
    thread closes every socket, so no other thread pulls a socket from under select().
    `stop(immediately=True)` cuts the wait short: what is in flight is dropped.

    Other threads wake the loop by writing to waitress's trigger, a pipe the loop closes
    as it returns; the trigger lock orders the two, so nobody writes to a closed pipe
    (EBADF, or a stray byte in whatever file reuses its number).
    """

    def __init__(self, app: Flask, **overrides: Any):
        keep_alive_after_bodiless_answers()
        for logger_name, warnings in (
            ("waitress.queue", QUEUE_WARNINGS),
            ("waitress", CONNECTION_LIMIT_REACHED),
            ("waitress", CONNECTION_LIMIT_LEFT),
        ):
            logger = logging.getLogger(logger_name)
            if warnings not in logger.filters:
                logger.addFilter(warnings)
        options = waitress_options(app.config)
        if "listen" in overrides:  # waitress refuses host and port beside listen
            del options["host"], options["port"]
        options.update(overrides)
        # Accepting with no descriptor left spins: fewer connections, one warning line.
        options["connection_limit"] = connections_that_fit(
            int(options["connection_limit"]), FDS_PER_CONNECTION
        )
        try:
            self.server = _create_waitress_server(app, **options)
        except OSError as error:
            raise CannotListen.from_error(error, options) from None
        # Request threads that never wait for a client to read, and strict framing.
        self.server.channel_class = BoundedOutputChannel
        self._close_stalled_connections = stalled_connections_sweeper(self.server)
        self._stopping = threading.Event()
        self._stopping_at_once = threading.Event()
        # Reentrant: a signal handler calling stop() may interrupt the loop thread while
        # it holds the lock to close the trigger; a plain Lock would deadlock there.
        self._trigger_lock = threading.RLock()
        self._trigger_open = True
        self._pull_open_trigger = self.server.pull_trigger
        # Request threads wake the loop through server.pull_trigger too, and one that
        # outlives a stop (DRAIN_SECONDS passed, or a stop at once) does so after run().
        self.server.pull_trigger = self._wake_loop

    @property
    def port(self) -> int:
        return self.server.effective_port

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stopping.is_set()

    def stop(self, *, immediately: bool = False) -> None:
        """Ask `run` to finish what is in flight and return, or, `immediately`, to return now.

        Safe from any thread and from signal handlers, before `run` starts, while it
        runs or drains, after it returned, and any number of times.
        """
        already_asked = (self._stopping_at_once if immediately else self._stopping).is_set()
        if immediately:
            self._stopping_at_once.set()
        self._stopping.set()
        # Waking the loop only for a new request keeps repeated calls from filling the
        # trigger's pipe while nothing reads it (before run starts, or after it returned).
        if not already_asked:
            self._wake_loop()

    def run(self) -> None:
        """Serve until `stop`, answer what is in flight, then close every socket."""
        try:
            while not self._stopping.is_set():
                self._turn(self.server.adj.asyncore_loop_timeout)
                self._close_stalled_connections()
            log.info("stopping: finishing requests in flight")
            wasyncore.dispatcher.close(self.server)  # stop accepting; the trigger and channels stay
            deadline = time.monotonic() + DRAIN_SECONDS
            self._answer_in_flight(deadline)
            self._stop_request_threads(deadline)
        finally:
            self._close_every_socket()
        log.info("stopped")

    def _answer_in_flight(self, deadline: float) -> None:
        while _in_flight(self.server) and time.monotonic() < deadline:
            if self._stopping_at_once.is_set():
                log.warning("stopping at once: requests in flight are not answered")
                return
            self._turn(0.05)
            self._close_stalled_connections()

    def _stop_request_threads(self, deadline: float) -> None:
        """Let request threads finish until `deadline` or a stop at once, then cancel the rest.

        Polled rather than left to waitress's shutdown(timeout), so that a stop at once
        cuts the wait short; a thread still running is a daemon and is left behind.
        """
        dispatcher = self.server.task_dispatcher
        dispatcher.set_thread_count(0)  # each thread exits when its task is done
        while dispatcher.threads and time.monotonic() < deadline:
            if self._stopping_at_once.is_set():
                break
            time.sleep(0.05)
        dispatcher.shutdown(cancel_pending=True, timeout=0)

    def _close_every_socket(self) -> None:
        # The server's own close() would close the trigger too, without the lock.
        wasyncore.dispatcher.close(self.server)
        trigger = self.server.trigger
        for dispatcher in list(self.server._map.values()):
            if dispatcher is not trigger:
                # handle_close, not close_all's bare close: a channel releases its
                # buffers (temporary files for large bodies) only there.
                dispatcher.handle_close()
        with self._trigger_lock:
            self._trigger_open = False  # first: a signal handler may run inside close()
            trigger.close()

    def _wake_loop(self) -> None:
        """Make the loop's select() return now rather than at its timeout, if it still can."""
        with self._trigger_lock:
            if self._trigger_open:
                self._pull_open_trigger()

    def _turn(self, timeout: float) -> None:
        wasyncore.loop(
            timeout=timeout,
            map=self.server._map,
            use_poll=self.server.adj.asyncore_use_poll,
            count=1,
        )


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Serving:
    """memflask's whole serving life: signals, the graceful server, the last snapshot.

    Shaped as waitress's own server (`print_listen`, `run`), so that `waitress-serve
    wsgi:app` runs it too (see `adopt_waitress_serve`).
    """

    def __init__(self, app: Flask, **overrides: Any):
        if app.config["TLS_CERT"]:
            raise ConfigError(
                "TLS_CERT is set, but waitress has no TLS: serve HTTPS with memflask serve "
                "--server granian, or unset TLS_CERT and TLS_KEY and put a TLS proxy in front"
            )
        self.app = app
        self.server = GracefulServer(app, **overrides)

    def print_listen(self, format_string: str) -> None:
        """Say where and what is served, once, on stderr (flushed: a pipe buffers stdout)."""
        addresses = listening_addresses(self.server.server)
        print(startup_line(self.app, addresses), file=sys.stderr, flush=True)
        warning = token_in_clear_warning(self.app.config, addresses)
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, answer what is in flight, save, and return.

        A second SIGTERM or SIGINT returns at once, without waiting for requests in
        flight. The signal handlers this replaced are back when it returns.
        """
        previous_handlers = _stop_on_signals(self.server)
        try:
            self.server.run()
        finally:
            _restore_signal_handlers(previous_handlers)
        # The last snapshot save, after the last request was answered; then close the store.
        self.app.extensions["memflask"].lifecycle.shutdown()


def serve(app: Flask) -> None:
    """Serve `app` with waitress until SIGTERM or SIGINT, then answer what is in flight."""
    serving = Serving(app)
    serving.print_listen(
        "memflask serving on http://{}:{}"
    )  # waitress's call, as in waitress.serve
    serving.run()


def listening_addresses(server: Any) -> list[tuple[str, int]]:
    """Where a waitress server listens (one socket or several)."""
    effective = getattr(server, "effective_listen", None)  # a MultiSocketServer
    if effective is not None:
        return list(effective)
    return [(server.effective_host, server.effective_port)]


_create_waitress_server = waitress.create_server


def adopt_waitress_serve() -> None:
    """Make `waitress-serve wsgi:app` serve memflask as `python -m memflask` does.

    waitress-serve imports wsgi.py, then calls waitress.serve, which builds its server
    through `waitress.create_server` looked up at call time. Put in its place, memflask's
    Serving brings the same limits (header and body sized for MAX_VALUE_BYTES, the
    connection limit fitted to the open files), connections that hold no thread while
    their client does not read and refuse a request framed twice
    (memflask.serving.waitress_channel), keep-alive after 204/304, a graceful stop on SIGTERM
    with the last snapshot saved, and exit status 0. waitress-serve's own options still
    win (the connection limit is then fitted too).
    """

    def create_server(app: Any, **options: Any) -> Any:
        if "memflask" not in getattr(app, "extensions", {}):
            return _create_waitress_server(app, **options)  # another app: waitress's own
        return Serving(app, **options)

    keep_alive_after_bodiless_answers()
    waitress.create_server = create_server


def _stop_on_signals(server: GracefulServer) -> dict[int, Any]:
    """Handle STOP_SIGNALS by stopping `server`; return the handlers this replaced."""

    def handle_stop_signal(signum: int, frame: Any) -> None:
        # The first signal asks for a graceful stop; one more means the operator (or
        # the supervisor) will not wait for it, as with uvicorn.
        server.stop(immediately=server.stopping)

    return {signum: signal.signal(signum, handle_stop_signal) for signum in STOP_SIGNALS}


def _restore_signal_handlers(handlers: Mapping[int, Any]) -> None:
    for signum, handler in handlers.items():
        # None: a handler installed outside Python, which cannot be put back; the
        # default action is the nearest thing.
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _in_flight(server: Any) -> bool:
    """Whether any connection has a received request unanswered or a response unsent."""
    return any(
        channel.requests or channel.total_outbufs_len
        for channel in list(server.active_channels.values())
    )
