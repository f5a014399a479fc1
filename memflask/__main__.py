"""`python -m memflask`: serve with waitress on HOST:PORT (127.0.0.1:8000 by default)."""

from __future__ import annotations

import sys

import waitress

from . import create_app
from .config import ConfigError


def main() -> None:
    try:
        app = create_app()
    except ConfigError as error:
        sys.exit(f"memflask: bad setting: {error}")
    waitress.serve(
        app,
        host=app.config["HOST"],
        port=app.config["PORT"],
        threads=app.config["THREADS"],
        ident="memflask",
    )


if __name__ == "__main__":
    main()
