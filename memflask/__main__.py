"""`python -m memflask`: serve with waitress on HOST:PORT (127.0.0.1:8000 by default).

SIGTERM or SIGINT stops it gracefully: requests in flight are answered, then it exits 0.
A bad setting is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from . import create_app
from .config import ConfigError
from .serving.waitress import CannotListen, serve


def main() -> None:
    try:
        app = create_app()
    except ConfigError as error:
        error.exit()
    try:
        serve(app)
    except ConfigError as error:  # one waitress cannot serve (TLS_CERT set)
        error.exit()
    except CannotListen as error:
        sys.exit(f"memflask: {error}")


if __name__ == "__main__":
    main()
