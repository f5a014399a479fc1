"""Serving memflask with granian: its settings, and the memory store's place in its workers.

granian answers requests in worker processes that it forks, each importing the app on
its own, and stops them on SIGTERM or SIGINT once they answered what is in flight. So
the store lives in the worker, and its last snapshot save has to happen there too, when
the worker exits: `prepare_worker` arranges it. It also refuses the memory store in one
of several workers (each would hold a cache of its own, and a client would see a key
come and go with the worker that answers), and mends granian's WSGI environ where
memflask relies on what waitress gives (`GranianEnviron`), reading each request body
before the app runs, so a client sending its body slowly holds one thread, not the app.

granian is an optional extra (`pip install memflask[granian]`): nothing here imports it
until a server is built, so memflask imports without it.
"""

from __future__ import annotations

import functools
import gc
import io
import multiprocessing
import multiprocessing.util
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from flask import Flask

from .. import config
from ..app import create_app
from ..core.errors import HTTPRefusal
from ..web.hotpath import STATUS_LINES, wsgi_headers
from ..web.pipeline import render_refusal
from .common import (
    CONNECTION_LIMIT,
    DRAIN_SECONDS,
    read_settings,
    request_head_limit,
    startup_line,
    token_in_clear_warning,
)
from .fd_limits import connections_that_fit

# The name granian gives its worker processes (multiprocessing.Process(name=...)).
WORKER_PROCESS_NAME = "granian-worker"
# How long a client may take to send a request's header block (granian's default is
# 30 s): past it, its connection is closed and its place given to another client.
HEADER_SECONDS = 10
# A request whose body took longer than this to arrive is answered 408 (connection
# closed) and its command never runs: at least 0.5 MiB/s for the largest body.
BODY_SECONDS = 10
# granian's blocking threads in each worker: the threads that read request bodies (a
# client sending its body slowly holds one until it is done or gone; granian reads a
# body only on the thread that runs the request, and has no timeout for it). They take
# turns to run the app (see `app_slots`); idle ones end after 30 s (granian's default).
BLOCKING_THREADS = 64
# How many of them may be reading a request body at once. A read cannot be interrupted
# (BODY_SECONDS is checked after it returns), so 64 clients each dripping a body held
# every thread, and a fresh /healthz waited for them. 16 threads stay for requests
# without a body and for bodies already read; a body that finds no reader free is
# answered 503 `busy` at once, unread. A body that came in its first packets is read at
# once, so a reader is held only briefly by every client but a slow one.
BODY_READERS = BLOCKING_THREADS - 16


class WorkersRefused(config.ConfigError):
    """Several granian workers, each with a memory store of its own."""


def serve(settings: Optional[Mapping[str, Any]] = None, workers: int = 1) -> None:
    """Serve memflask with granian until SIGTERM or SIGINT, then return (in the main process).

    `settings` are the CLI's overrides, as for create_app. Bad settings, and several
    workers on the memory store, raise ConfigError here, before granian starts.
    """
    overrides = dict(settings or {})
    server = create_server(read_settings(overrides), workers)
    # The app is built in each worker, where requests are answered; built here, its store
    # (and its snapshot saver) would stay behind in this process.
    server.serve(target_loader=functools.partial(load_app, overrides), wrap_loader=False)


def create_server(settings: Mapping[str, Any], workers: int = 1) -> Any:
    """A granian.Granian for memflask's `settings` (not started); refuses workers as below."""
    refuse_workers_without_a_shared_store(workers, settings["STORE_URL"])
    from granian import Granian  # the optional extra, imported only to serve

    # The target names the app in granian's logs; load_app is what each worker runs.
    return Granian("memflask:create_app", **granian_options(settings, workers))


def granian_options(settings: Mapping[str, Any], workers: int = 1) -> dict[str, Any]:
    """granian's settings for memflask's: the same address, threads and limits as waitress."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    return {
        "address": settings["HOST"],
        "port": settings["PORT"],
        "interface": Interfaces.WSGI,
        "workers": workers,
        "blocking_threads": blocking_threads(settings),
        # HTTP/1 only, as waitress: HTTP/2 would bring a header limit of its own.
        "http": HTTPModes.http1,
        # Connections served at once, idle ones included, as waitress's connection_limit:
        # granian's default (1,024) let as many silent sockets lock every client out.
        # Fitted to the open-file limit (raised in this process, inherited by the workers):
        # past it, accept() fails at once, over and over (memflask.serving.fd_limits).
        "backpressure": connections_that_fit(CONNECTION_LIMIT),
        # hyper's read buffer bounds the request head: the same limit as waitress's
        # (hyper refuses a URL over 64 KiB whatever it is, so a larger value goes in a
        # body). The body limit is the app's own: GranianEnviron reads the body, and the
        # app refuses it past MAX_CONTENT_LENGTH.
        "http1_settings": HTTP1Settings(
            max_buffer_size=request_head_limit(settings),
            header_read_timeout=HEADER_SECONDS * 1000,
        ),
        "websockets": False,  # WSGI has none; saying so spares a line in the log
        # A stop waits for requests in flight as waitress's does, DRAIN_SECONDS at most;
        # then granian kills the worker, and its last snapshot save is lost. granian's
        # default is to wait forever, also for a worker that missed the signal.
        "workers_kill_timeout": int(DRAIN_SECONDS),
        # HTTPS by granian's own TLS (rustls: TLS 1.2 and 1.3, none older).
        "ssl_cert": _path_or_none(config.tls_path(settings, "TLS_CERT")),
        "ssl_key": _path_or_none(config.tls_path(settings, "TLS_KEY")),
    }


def _path_or_none(path: Optional[str]) -> Optional[Path]:
    return None if path is None else Path(path)


def blocking_threads(settings: Mapping[str, Any]) -> int:
    """granian's blocking threads in each worker: BLOCKING_THREADS, at least THREADS.

    They read request bodies, and take turns to run the app (`app_slots`): a client
    sending its body at 1 byte/s held granian's one thread, and every request behind it.
    """
    return max(BLOCKING_THREADS, settings["THREADS"])


def app_slots(settings: Mapping[str, Any]) -> int:
    """How many of granian's threads may run the app at once (GranianEnviron).

    One on the memory store: its requests never wait for I/O, so more threads only take
    turns at the GIL (one served /get about twice as fast as four, bench/README.md; many
    threads waiting for this slot instead of the GIL serve it as fast as one). On Redis a
    thread waits out each round trip, and a stalled Redis must not hold every request
    behind one: THREADS, as waitress has.
    """
    return 1 if config.on_memory_store(settings["STORE_URL"]) else settings["THREADS"]


def refuse_workers_without_a_shared_store(workers: int, store_url: str) -> None:
    """Raise WorkersRefused for more than one worker unless the store is shared (Redis)."""
    if workers > 1 and config.on_memory_store(store_url):
        raise WorkersRefused(
            f"{workers} granian workers would each hold a memory store of their own "
            "(they share nothing): serve with 1 worker, or share a Redis store "
            "(STORE_URL=redis://host:6379/0)"
        )


def load_app(overrides: Mapping[str, Any]) -> Flask:
    """Build the app in a granian worker (module-level, so a spawned worker can unpickle it).

    Says what it serves on stderr, as memflask serve does with waitress: one line per
    worker, since each restores its own store.
    """
    app = prepare_worker(create_app(settings=overrides))
    addresses = [(app.config["HOST"], app.config["PORT"])]
    print(startup_line(app, addresses, blocking_threads(app.config)), file=sys.stderr, flush=True)
    warning = token_in_clear_warning(app.config, addresses)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    return app


def prepare_worker(app: Flask) -> Flask:
    """Fit `app` to the granian worker process it was built in; elsewhere leave it be.

    In a worker: refuse the memory store when the granian that started the worker runs
    several (exit 1 with the reason), and stop the app's lifecycle (the last snapshot
    save, then the store closed) when the worker exits. Elsewhere, waitress and `flask
    run` serve in this process and stop the app themselves. Returns `app`, so an entry
    point reads `app = prepare_worker(create_app())`.
    """
    if multiprocessing.current_process().name != WORKER_PROCESS_NAME:
        return app
    parent = parent_granian()
    try:
        workers = 1 if parent is None else parent.workers
        refuse_workers_without_a_shared_store(workers, app.config["STORE_URL"])
    except WorkersRefused as refusal:
        # A worker's SystemExit with a message prints it and exits 1, without a traceback;
        # granian then stops, saying the worker exited.
        raise SystemExit(f"memflask: {refusal}") from None
    if getattr(parent, "interrupt_signal", False):
        # SIGTERM or SIGINT came while the app was being built (a large snapshot takes a
        # while to restore). granian installs the worker's handler only after the app is
        # built; until then the handler inherited from the parent runs, marking this
        # copy of the parent's Granian and nothing else, and the worker would serve on,
        # deaf to the stop. It has answered nothing yet: leaving now loses nothing.
        raise SystemExit(0)
    # A worker process ends in os._exit (multiprocessing's fork), where atexit handlers do
    # not run; multiprocessing's own finalizers do, after a clean stop (granian's workers
    # return once every request in flight is answered) and after an exception alike.
    lifecycle = app.extensions["memflask"].lifecycle
    multiprocessing.util.Finalize(None, lifecycle.shutdown, exitpriority=0)
    app.wsgi_app = GranianEnviron(  # type: ignore[method-assign]
        app.wsgi_app, app.config["MAX_CONTENT_LENGTH"], app_slots(app.config)
    )
    return app


def parent_granian() -> Any:
    """This worker's copy of the Granian object that started it; None if there is none.

    granian tells a worker neither how many workers there are nor that there are several
    (its environ says wsgi.multiprocess False, and `--workers` may come from argv,
    GRANIAN_WORKERS or a Python caller). A forked worker holds a copy of the parent's
    memory, though, with the Granian object that forked it; a spawned one (the start
    method on macOS and Windows) does not.
    """
    granian = sys.modules.get("granian")
    if granian is None:
        return None
    # type(), not isinstance: a proxy (Flask's current_app) would be asked its __class__.
    found = [held for held in gc.get_objects() if issubclass(type(held), granian.Granian)]
    return found[0] if len(found) == 1 else None


class GranianEnviron:
    """WSGI middleware: granian's environ, mended where memflask relies on what waitress
    gives, and the body read before the app runs, as waitress reads it.

    - The body is read whole (bounded, below) by granian's thread before that thread
      takes its turn at the app (`slots`: one on the memory store), so a client sending
      its body slowly holds that one thread, never the app. A body that took more than
      BODY_SECONDS is answered 408 and its command never runs. At most `readers` threads
      read bodies at once; a body past them is answered 503 (`busy`), unread, so slow
      bodies never hold every thread.
    - A chunked body comes whole, with its CONTENT_LENGTH and without its
      Transfer-Encoding, as waitress hands it over. granian streams it unlimited, yet
      marks the input `wsgi.input_terminated`, so Werkzeug trusts that the server
      limited it and would read any size into memory. Read here up to one byte past
      MAX_CONTENT_LENGTH, it is refused by memflask's own check on the length (the JSON
      413), and the rest is never read. A Content-Length over MAX_CONTENT_LENGTH is
      refused by its length, unread.
    - A request without a Host header has no HTTP_HOST, as memflask's Host check expects
      (it skips such requests: no browser sends one); granian sets it to "" instead.
    """

    def __init__(
        self,
        wsgi_app: Callable,
        max_body_bytes: int,
        slots: int = 1,
        readers: int = BODY_READERS,
    ):
        self.wsgi_app = wsgi_app
        self.max_body_bytes = max_body_bytes
        # Taken without waiting: a thread waiting here would be held as a reader is.
        self.readers = threading.BoundedSemaphore(readers)
        # Threads waiting for the app wait here, not for the GIL (see app_slots); a Lock
        # for one slot, as Semaphore is written in Python.
        self.slots = threading.Lock() if slots == 1 else threading.BoundedSemaphore(slots)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("CONTENT_LENGTH") and "HTTP_TRANSFER_ENCODING" in environ:
            return framed_twice(start_response)
        if environ.get("CONTENT_LENGTH", "") not in ("", "0") or (
            "HTTP_TRANSFER_ENCODING" in environ
        ):
            if not self.readers.acquire(blocking=False):
                return readers_busy(start_response)
            try:
                started = time.monotonic()
                self.read_body(environ)
            finally:
                self.readers.release()
            if time.monotonic() - started > BODY_SECONDS:
                return body_too_slow(start_response)
        if environ.get("HTTP_HOST") == "":
            del environ["HTTP_HOST"]
        with self.slots:
            return self.wsgi_app(environ, start_response)

    def read_body(self, environ: dict[str, Any]) -> None:
        """Read the body into memory: up to its length, or one byte past the limit."""
        length = environ.get("CONTENT_LENGTH", "")
        if length:
            if not length.isdigit() or int(length) > self.max_body_bytes:
                return  # refused by its length (or its form), unread
            environ["wsgi.input"] = io.BytesIO(read_at_most(environ["wsgi.input"], int(length)))
            return
        body = read_at_most(environ["wsgi.input"], self.max_body_bytes + 1)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores the length beside it


def body_too_slow(start_response: Callable) -> Iterable[bytes]:
    """memflask's JSON 408 for a body that took more than BODY_SECONDS; connection closed."""
    message = f"the request body took more than {BODY_SECONDS} s to arrive"
    return refuse_and_close(start_response, HTTPRefusal(408, "request_timeout", message))


def readers_busy(start_response: Callable) -> Iterable[bytes]:
    """memflask's JSON 503 for a body that found BODY_READERS bodies being read; connection
    closed (its body is left unread), and a retry invited in a second."""
    message = "too many request bodies are being read at once: retry in a second"
    refusal = HTTPRefusal(503, "busy", message, (("Retry-After", "1"),))
    return refuse_and_close(start_response, refusal)


def framed_twice(start_response: Callable) -> Iterable[bytes]:
    """memflask's JSON 400 for a request with both Content-Length and Transfer-Encoding.

    RFC 9112 section 6.1: the connection must close, or bytes a proxy framing by length
    took for the body run as a request of their own (granian 2.5.7 ran them).
    """
    message = "Content-Length and Transfer-Encoding together are refused"
    return refuse_and_close(start_response, HTTPRefusal(400, "invalid_framing", message))


def refuse_and_close(start_response: Callable, refusal: HTTPRefusal) -> Iterable[bytes]:
    """Answer `refusal` as memflask's JSON, closing the connection after it."""
    refusal.headers = (*refusal.headers, ("Connection", "close"))
    answer = render_refusal(refusal)
    start_response(STATUS_LINES[answer.status], wsgi_headers(answer))
    return [answer.body]


def read_at_most(stream: Any, limit: int) -> bytes:
    """Read `stream` to its end or to `limit` bytes, whichever comes first."""
    chunks, size = [], 0
    while size < limit:
        chunk = stream.read(min(limit - size, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
