"""The application factory: settings, store, registry and the `/<verb>` blueprint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from . import (
    api,
    commands,  # noqa: F401 -- importing it registers every verb
    config,
    snapshot,
)
from .commands.base import CommandCounts, CommandError, Context
from .metrics import Metrics
from .registry import default_registry
from .security import Access
from .store import MemoryStore, Store


def create_app(test_config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build the memflask app: settings, a fresh store and registry, the `/<verb>` blueprint."""
    app = Flask("memflask", instance_relative_config=True)
    config.load(app.config, test_config)

    context = Context(
        registry=default_registry.copy(),
        counts=CommandCounts(),
        max_key_bytes=app.config["MAX_KEY_BYTES"],
        max_value_bytes=app.config["MAX_VALUE_BYTES"],
        max_batch=app.config["MAX_BATCH"],
        started=time.monotonic(),
    )
    store = _make_store(app.config)
    access = Access.from_settings(
        app.config["TOKEN"], app.config["ALLOWED_HOSTS"], app.config["ALLOWED_ORIGINS"]
    )
    snapshots = None
    if app.config["SNAPSHOT_PATH"]:
        path = Path(app.instance_path) / app.config["SNAPSHOT_PATH"]  # absolute stays absolute
        snapshot.load(store, path)
        snapshots = snapshot.PeriodicSaver(store, path, app.config["SNAPSHOT_INTERVAL"])
        snapshots.start()
    app.extensions["memflask"] = api.State(store, context, access, Metrics(store), snapshots)

    app.register_blueprint(api.bp)
    app.register_error_handler(CommandError, api.command_error)
    app.register_error_handler(HTTPException, api.http_error)
    # Log through the root logger, set up here unless the host already did. Done before
    # app.logger is first used, so Flask adds no handler of its own: waitress also calls
    # basicConfig, and two handlers would print every line twice.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config["APP_ENV"] != "production":
        app.logger.setLevel(logging.INFO)
        app.after_request(_log_request)
    return app


def _make_store(config: Mapping[str, Any]) -> Store:
    """The backend STORE_URL names: the memory store, or Redis."""
    if config["STORE_URL"].startswith("memory://"):
        return MemoryStore(
            max_keys=config["SIZE"], max_bytes=config["MAX_BYTES"], clock=config["CLOCK"]
        )
    from .redis_store import RedisStore  # imports redis-py only when it is used

    return RedisStore(
        config["STORE_URL"],
        prefix=config["STORE_PREFIX"],
        timeout=config["STORE_TIMEOUT_MS"] / 1000,
        clock=config["CLOCK"],
    )


def _log_request(response: Response) -> Response:
    """One line per request, as the original printed (off when APP_ENV=production)."""
    current_app.logger.info(
        "%s %s %s", request.method, request.full_path.rstrip("?"), response.status_code
    )
    return response
