"""memflask: an in-memory key/value cache server over HTTP.

Kept light: `import memflask.client` must not import the server (Flask, waitress,
prometheus_client, redis). `create_app` is imported from `memflask.app` on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
