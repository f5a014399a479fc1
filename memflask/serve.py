"""Serving memflask with waitress: the settings every entry point and the tests share."""

from __future__ import annotations

from typing import Any, Mapping

KIB = 1024


def waitress_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return waitress's settings for an app's config (see README, "Serving")."""
    return {
        "host": config["HOST"],
        "port": config["PORT"],
        "threads": config["THREADS"],
        "ident": "memflask",
        # A query-string value arrives percent-encoded, up to 3 bytes per value byte, and
        # must fit in waitress's header limit (its 256 KiB default refuses a 1 MiB value).
        "max_request_header_size": 3 * config["MAX_VALUE_BYTES"] + 64 * KIB,
        "max_request_body_size": config["MAX_CONTENT_LENGTH"],
    }
