"""How each benchmarked app is served: on waitress, and on granian when it is installed.

Every app gets exactly the same settings on a given server, so the server's cost is the
same for all of them and the ratios measure the apps:

- waitress: memflask's own settings (serve.waitress_options, THREADS worker threads), and
  memflask's fix that keeps connections open after 204 and 304 answers.
  `python -m bench.serve NAME PORT` serves app NAME on waitress.
- granian: its own command (not memflask's `serve --server granian`), one worker, HTTP/1.
  memflask as memflask serve runs it (`prepare_worker`: BLOCKING_THREADS threads that read
  bodies and take turns at the app, one at a time on the memory store, THREADS on Redis);
  each reference on as many threads as memflask runs the app at once (one for the apps
  that never wait for I/O, the GIL makes more only take turns; THREADS on Redis). The
  Redis section also runs memflask on Redis with two workers, which only a shared store
  allows.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, Callable

from memflask import create_app
from memflask.granian_server import prepare_worker

from .references import (
    bare_redis_app,
    bare_redis_pipelined_app,
    bare_wsgi_app,
    minimal_flask_app,
)

SERVERS = ("waitress", "granian")


def memflask_app() -> Any:
    """memflask as it runs in production: no request log, the hot path on (its default);
    in a granian worker, fitted to it as memflask's entry points do (elsewhere: as is)."""
    return prepare_worker(create_app({"APP_ENV": "production"}))


APPS: dict[str, Callable[[], Any]] = {
    "memflask": memflask_app,
    "flask-minimal": minimal_flask_app,
    "bare-wsgi": bare_wsgi_app,
}
# The Redis section's own references, on the Redis at MEMFLASK_STORE_URL (bench/redis_bench.py).
REDIS_APPS: dict[str, Callable[[], Any]] = {
    "bare-wsgi-redis": bare_redis_app,
    "bare-wsgi-redis-pipelined": bare_redis_pipelined_app,
}


def memflask_settings() -> Any:
    return memflask_app().config


def granian_threads(app: str, store_url: str) -> int:
    """granian's blocking threads for `app`: memflask's as memflask serve --server granian
    picks them (memflask.granian_server.blocking_threads); a reference's, as many as
    memflask runs the app on at once (app_slots), its best."""
    from memflask.granian_server import app_slots, blocking_threads

    if app in REDIS_APPS:
        store_url = "redis://"
    settings = {"STORE_URL": store_url, "THREADS": memflask_settings()["THREADS"]}
    return blocking_threads(settings) if app == "memflask" else app_slots(settings)


def granian_installed() -> bool:
    return importlib.util.find_spec("granian") is not None


def command(
    server: str, app: str, port: int, workers: int = 1, store_url: str = "memory://"
) -> list[str]:
    """The command line that serves `app` on `server` at 127.0.0.1:`port`; `workers`
    processes (granian only: waitress has one); `store_url`: where memflask keeps items."""
    if server == "waitress":
        if workers != 1:
            raise ValueError("waitress serves from one process")
        return [sys.executable, "-m", "bench.serve", app, str(port)]
    if server == "granian":
        factory = {**APPS, **REDIS_APPS}[app]
        return [
            *(sys.executable, "-m", "granian", "--interface", "wsgi"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            # memflask serve's own choice (granian's default for WSGI is backlog / 2 =
            # 512 threads): one for an app that never waits for I/O, THREADS on Redis.
            *("--blocking-threads", str(granian_threads(app, store_url))),
            # HTTP/1 as waitress and wrk speak it; WSGI has no websockets.
            *("--http", "1", "--no-ws", "--log-level", "warning"),
            *("--factory", f"{factory.__module__}:{factory.__name__}"),
        ]
    raise ValueError(f"unknown server {server!r}")


def serve_on_waitress(name: str, port: int) -> None:
    import waitress

    from memflask.serve import keep_alive_after_bodiless_answers, waitress_options

    # Under full load every request waits for a thread a moment; waitress warns each time.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Plain waitress closes the connection after every 204 (it has no Content-Length):
    # every app here gets memflask's fixed waitress, so none pays for a new connection.
    keep_alive_after_bodiless_answers()
    options = {**waitress_options(memflask_settings()), "host": "127.0.0.1", "port": port}
    waitress.serve({**APPS, **REDIS_APPS}[name](), _quiet=True, **options)


if __name__ == "__main__":
    serve_on_waitress(sys.argv[1], int(sys.argv[2]))
