"""`python -m memflask`: serve with waitress on HOST:PORT (127.0.0.1:8000 by default)."""

from __future__ import annotations

import sys

import waitress

from . import create_app
from .config import ConfigError
from .serve import waitress_options


def main() -> None:
    try:
        app = create_app()
    except ConfigError as error:
        sys.exit(f"memflask: bad setting: {error}")
    waitress.serve(app, **waitress_options(app.config))


if __name__ == "__main__":
    main()
