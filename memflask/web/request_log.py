"""The request log: one line per request, which a request cannot forge or inflate."""

from __future__ import annotations

import re
from typing import Any

MAX_LOGGED_PATH = 200
# The environ key of the request's token's name (a scoped token's), logged with its line.
TOKEN_NAME = "memflask.token"
# What could end or forge a log line: the control characters (Unicode category Cc, C1's
# U+0085 NEXT LINE among them) and the line and paragraph separators (Zl, Zp), which
# str.splitlines, editors and log viewers also break lines at.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def log_request(logger: Any, environ: dict[str, Any], status: int, seconds: float) -> None:
    """One line per request: method, path, status and duration, and the name of a scoped
    token (never the token).

    Never the query string or the body: they carry keys, values and their sizes (a
    1 MiB value made a 1 MiB line). Control characters in the path are escaped, so a
    request cannot forge a second log line.
    """
    method = _escaped(environ.get("REQUEST_METHOD", ""))
    path = _escaped(environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"))
    token = environ.get(TOKEN_NAME)
    if token is None:
        logger.info("%s %s %s %.2fms", method, path[:MAX_LOGGED_PATH], status, seconds * 1000)
    else:  # a name the tokens file holds: A-Z a-z 0-9 _ . -
        logger.info(
            "%s %s %s %.2fms token=%s",
            method,
            path[:MAX_LOGGED_PATH],
            status,
            seconds * 1000,
            token,
        )


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
