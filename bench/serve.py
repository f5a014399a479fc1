"""How each benchmarked app is served: on waitress, and on granian when it is installed.

memflask runs by the commands its users run, the README's (tests/benchmarks/test_references.py
checks they are the same); the references on the stock servers:

- waitress: memflask by `waitress-serve --listen=... wsgi:app` (README, "Set up"); the
  references by stock `waitress-serve --call` (its 4 threads; it closes the connection
  after a 204, so their /set opens a new connection each time). One more memflask row,
  "memflask, plain waitress.serve", serves `create_app()` through plain `waitress.serve`
  with memflask's options and keep-alive fix (`python -m bench.serve memflask-plain
  PORT`): what memflask's own server (`memflask.serving.waitress.Serving`) costs beside it.
- granian: memflask by granian's command in the README's Serving section (64 blocking
  threads that read bodies and take turns at the app); each reference by granian's own
  command on as many threads as memflask runs the app at once (one for the apps that
  never wait for I/O, the GIL makes more only take turns; THREADS on Redis), HTTP/1.
  The Redis section also runs memflask on Redis with two workers, which only a shared
  store allows.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, Callable

from memflask import create_app
from memflask.serving.granian import BLOCKING_THREADS, prepare_worker

from .references import (
    bare_redis_app,
    bare_redis_pipelined_app,
    bare_wsgi_app,
    minimal_flask_app,
)

SERVERS = ("waitress", "granian")
# memflask's production commands as the README gives them, for `port`: the program, then
# its arguments. Run here as `python -m waitress` and `python -m granian`, the same code
# as the programs' own scripts.
PRODUCTION_COMMANDS = {
    "waitress": ("waitress-serve", "--listen=127.0.0.1:{port}", "wsgi:app"),
    "granian": (
        *("granian", "--interface", "wsgi", "wsgi:app", "--workers-kill-timeout", "10"),
        *("--blocking-threads", str(BLOCKING_THREADS), "--http1-header-read-timeout", "10000"),
        *("--backpressure", "4096"),
    ),
}
MODULES = {"waitress-serve": "waitress", "granian": "granian"}
# The production commands' environment: no request log (wsgi:app reads it at start).
ENVIRONMENT = {"APP_ENV": "production"}
PLAIN_WAITRESS = "memflask-plain"  # memflask under plain waitress.serve, waitress only


def memflask_app() -> Any:
    """memflask as it runs in production: no request log, the hot path on (its default);
    in a granian worker, fitted to it as memflask's entry points do (elsewhere: as is)."""
    return prepare_worker(create_app({"APP_ENV": "production"}))


APPS: dict[str, Callable[[], Any]] = {
    "memflask": memflask_app,
    PLAIN_WAITRESS: memflask_app,
    "flask-minimal": minimal_flask_app,
    "bare-wsgi": bare_wsgi_app,
}
# The Redis section's own references, on the Redis at MEMFLASK_STORE_URL (bench/redis_bench.py).
REDIS_APPS: dict[str, Callable[[], Any]] = {
    "bare-wsgi-redis": bare_redis_app,
    "bare-wsgi-redis-pipelined": bare_redis_pipelined_app,
}


def granian_threads(app: str, store_url: str) -> int:
    """A reference's blocking threads on granian: as many as memflask runs the app on at
    once (memflask.serving.granian.app_slots), its best."""
    from memflask.config import default_threads
    from memflask.serving.granian import app_slots

    if app in REDIS_APPS:
        store_url = "redis://"
    return app_slots({"STORE_URL": store_url, "THREADS": default_threads(store_url)})


def granian_installed() -> bool:
    return importlib.util.find_spec("granian") is not None


def command(
    server: str, app: str, port: int, workers: int = 1, store_url: str = "memory://"
) -> list[str]:
    """The command line that serves `app` on `server` at 127.0.0.1:`port`; `workers`
    processes (granian only: waitress has one); `store_url`: where memflask keeps items
    (given to it in MEMFLASK_STORE_URL)."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}")
    if server == "waitress" and workers != 1:
        raise ValueError("waitress serves from one process")
    if app == PLAIN_WAITRESS and server != "waitress":
        raise ValueError(f"{PLAIN_WAITRESS} is served by waitress only")
    if app == "memflask":
        return production_command(server, port, workers)
    if server == "waitress":
        if app == PLAIN_WAITRESS:
            return [sys.executable, "-m", "bench.serve", app, str(port)]
        factory = {**APPS, **REDIS_APPS}[app]
        return [
            *(sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}"),
            *("--call", f"{factory.__module__}:{factory.__name__}"),
        ]
    factory = {**APPS, **REDIS_APPS}[app]
    return [
        *(sys.executable, "-m", "granian", "--interface", "wsgi"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
        # As many as memflask runs its app on at once (granian's default for WSGI is
        # backlog / 2 = 512 threads): one for an app that never waits, THREADS on Redis.
        *("--blocking-threads", str(granian_threads(app, store_url))),
        # HTTP/1 as waitress and wrk speak it; WSGI has no websockets.
        *("--http", "1", "--no-ws", "--log-level", "warning"),
        *("--factory", f"{factory.__module__}:{factory.__name__}"),
    ]


def production_command(server: str, port: int, workers: int = 1) -> list[str]:
    """memflask's README command for `server`, at 127.0.0.1:`port` (granian: `workers`)."""
    program, *arguments = (part.format(port=port) for part in PRODUCTION_COMMANDS[server])
    line = [sys.executable, "-m", MODULES[program], *arguments]
    if server == "granian":  # the README's command listens on granian's 127.0.0.1:8000
        line += ["--port", str(port), "--workers", str(workers)]
    return line


def serve_on_plain_waitress(port: int) -> None:
    """memflask on plain `waitress.serve` with its own options and keep-alive fix, without
    memflask's server (`Serving`): the bench's measure of what that server costs."""
    import waitress

    from memflask.serving.waitress import keep_alive_after_bodiless_answers, waitress_options

    # Under full load every request waits for a thread a moment; waitress warns each time.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    keep_alive_after_bodiless_answers()
    app = memflask_app()
    options = {**waitress_options(app.config), "host": "127.0.0.1", "port": port}
    waitress.serve(app, _quiet=True, **options)


if __name__ == "__main__":
    if sys.argv[1] != PLAIN_WAITRESS:
        sys.exit(f"usage: python -m bench.serve {PLAIN_WAITRESS} PORT")
    serve_on_plain_waitress(int(sys.argv[2]))
