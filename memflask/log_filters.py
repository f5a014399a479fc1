"""Log filters: waitress's warnings held to one every few seconds, and the development
server's line per request dropped (memflask logs its own). Apart from the servers, so
that building the app imports no server."""

from __future__ import annotations

import logging
import threading
import time


class EveryFewSeconds(logging.Filter):
    """Lets one record through per `seconds`, saying how many were held back meanwhile.

    waitress warns "Task queue depth is N" for every request queued behind busy threads:
    hundreds of lines a second under a burst, which bury everything else. With
    `starting_with`, only records whose message starts so are held back.
    """

    def __init__(self, seconds: float, starting_with: str = ""):
        super().__init__()
        self.seconds = seconds
        self.starting_with = starting_with
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.starting_with):
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._held += 1
                return False
            if self._held:
                record.msg = f"{record.msg} ({self._held} more such warnings in {self.seconds:g} s)"
            self._next, self._held = now + self.seconds, 0
            return True


QUEUE_WARNINGS = EveryFewSeconds(10)
# waitress says each time its connections reach the limit and drop below it: with clients
# waiting in the backlog, as connections close one by one, two lines per connection.
CONNECTION_LIMIT_REACHED = EveryFewSeconds(10, "total open connections reached")
CONNECTION_LIMIT_LEFT = EveryFewSeconds(10, "total open connections dropped below")


class WithoutRequestLines(logging.Filter):
    """Drops the development server's line per request, keeping its banner and its errors.

    Under `flask run`, Werkzeug logs `127.0.0.1 - - [date] "GET /set?key=k&value=v
    HTTP/1.1" 204 -` beside memflask's own line: two lines a request, and Werkzeug's
    carries the query string, so keys and values. Its request line is the one record
    logged at INFO with WSGIRequestHandler.log_request's format; its errors (a bad
    request line, a broken connection) come at ERROR and pass.
    """

    # werkzeug.serving.WSGIRequestHandler.log_request: self.log("info", '"%s" %s %s', ...)
    REQUEST_FORMAT = '] "%s" %s %s'

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and isinstance(record.msg, str)
            and record.msg.endswith(self.REQUEST_FORMAT)
        )


WERKZEUG_REQUEST_LINES = WithoutRequestLines()


def drop_werkzeug_request_lines() -> None:
    """Leave memflask's line the only one per request under `flask run` (see above).

    Process-wide, as loggers are; also with APP_ENV=production, where memflask logs no
    request and Werkzeug's line would still show every key and value.
    """
    werkzeug_logger = logging.getLogger("werkzeug")
    if WERKZEUG_REQUEST_LINES not in werkzeug_logger.filters:
        werkzeug_logger.addFilter(WERKZEUG_REQUEST_LINES)
