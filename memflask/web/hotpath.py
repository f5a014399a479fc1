"""The hot path: requests for registered verbs served at the WSGI level, without Flask's
per-request machinery (contexts, URL matching, hooks, Response objects).

It bypasses Flask, never memflask: the same pipeline (access checks, registry,
validation, `run()`, metrics, rendering), the same request log line, and the same JSON
500 (logged with its traceback) for an unexpected exception. Every other request
(`/healthz`, `/metrics`, `/openapi.json`, unknown verbs and routes) goes to Flask, whose
`/<verb>` view runs the same pipeline when the hot path is off (HOT_PATH = False).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from werkzeug.exceptions import InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from ..core.errors import from_werkzeug
from .pipeline import Answer, answer_verb, render_refusal
from .request_log import log_request
from .state import AppState

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
METHODS = frozenset({"GET", "HEAD", "POST"})
# "200 OK" for each status, as Werkzeug writes them (upper case).
STATUS_LINES = {code: f"{code} {phrase.upper()}" for code, phrase in HTTP_STATUS_CODES.items()}


class HotPath:
    """WSGI middleware in front of Flask's own `wsgi_app`, for the registered verbs."""

    def __init__(self, flask_app: WSGIApp, state: AppState, logger: logging.Logger, log: bool):
        self.flask_app = flask_app
        self.state = state
        self.logger = logger
        self.log = log  # one line per request, as Flask's after_request hook writes it

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        verb = path[1:]
        method = environ.get("REQUEST_METHOD")
        if (
            method not in METHODS
            or not path.startswith("/")
            or verb not in self.state.context.registry
        ):
            return self.flask_app(environ, start_response)
        started = time.perf_counter()
        try:
            answer = answer_verb(self.state, environ, verb)
        except Exception:
            # As Flask does: the traceback to the log, a JSON 500 without internals.
            self.logger.error("Exception on %s [%s]", path, method, exc_info=True)
            answer = render_refusal(from_werkzeug(InternalServerError()))
        if self.log:
            log_request(self.logger, environ, answer.status, time.perf_counter() - started)
        start_response(STATUS_LINES[answer.status], wsgi_headers(answer))
        return [] if method == "HEAD" else [answer.body]


def wsgi_headers(answer: Answer) -> list[tuple[str, str]]:
    """The answer's headers with its Content-Type and Content-Length (none on 204 and 304)."""
    if answer.content_type is None:
        if answer.status in (204, 304):
            return answer.headers
        return [("Content-Length", "0"), *answer.headers]
    return [
        ("Content-Type", answer.content_type),
        ("Content-Length", str(len(answer.body))),
        *answer.headers,
    ]
