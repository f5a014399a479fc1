"""What both servers share: the limits they hold requests to, the drain time, the start-up
line, and the settings read without building an app."""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from flask import Config, Flask

from .. import __version__, config
from ..config import on_memory_store
from ..limits import KIB

# Concurrent connections served; past it a server stops accepting until one closes.
CONNECTION_LIMIT = 4096
# How long a stop waits for in-flight requests to be answered before closing anyway.
DRAIN_SECONDS = 10.0


def request_head_limit(config: Mapping[str, Any]) -> int:
    """The longest request head (line and headers), in bytes: a query-string value arrives
    percent-encoded, up to 3 bytes per value byte, and must fit (waitress's 256 KiB default
    refused a 1 MiB value)."""
    return 3 * config["MAX_VALUE_BYTES"] + 64 * KIB


def startup_line(
    app: Flask, addresses: Iterable[tuple[str, int]], threads: Optional[int] = None
) -> str:
    """`memflask 0.1.0 serving http://127.0.0.1:8000 (memory store, ...)`: one line.

    It ends with the instance folder, which Flask picks by where memflask is installed.
    """
    config = app.config
    scheme = "https" if config["TLS_CERT"] else "http"
    urls = ", ".join(
        f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
        for host, port in addresses
    )
    store = config["STORE_URL"]
    if on_memory_store(store):
        caps = [
            f"SIZE {config['SIZE'] or 'unlimited'}",
            f"MAX_BYTES {config['MAX_BYTES'] or 'unlimited'}",
            f"EVICTION {config['EVICTION']}",
        ]
        what = f"memory store, {', '.join(caps)}"
        restored = app.extensions["memflask"].lifecycle.restored
        if restored is not None:
            what += f", {restored} items restored from the snapshot"
    else:
        what = f"store {_without_password(store)}"
    threads = config["THREADS"] if threads is None else threads
    what += f", {threads} thread{'s' if threads != 1 else ''}; instance folder {app.instance_path}"
    return f"memflask {__version__} serving {urls} ({what})"


def token_in_clear_warning(
    config: Mapping[str, Any], addresses: Iterable[tuple[str, int]]
) -> Optional[str]:
    """The one warning line for tokens sent in clear on a network: a token is needed, TLS
    is off, and an address is not loopback (None otherwise)."""
    if config["TLS_CERT"] or (config["TOKEN"] is None and not config["TOKENS_FILE"]):
        return None
    exposed = [host for host, _ in addresses if not _loopback(host)]
    if not exposed:
        return None
    return (
        f"memflask: warning: tokens travel in clear to {', '.join(exposed)}: anyone on the "
        "path can read them. Serve HTTPS (memflask serve --server granian --tls-cert FILE "
        "--tls-key FILE) or put a TLS proxy in front"
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def read_settings(overrides: Mapping[str, Any]) -> Config:
    """memflask's settings as create_app reads them, validated, without building the app.

    The same layers in the same order (defaults, instance/config.py, environment,
    `overrides`), on a Flask object of the same name, so the same instance folder.
    """
    shell = Flask(
        "memflask", instance_relative_config=True, instance_path=config.instance_path(overrides)
    )
    config.load(shell.config, None, overrides)
    return shell.config
