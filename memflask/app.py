"""The application factory: settings, store, registry and the `/<verb>` blueprint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from . import config
from .commands import DEFAULT_COMMANDS, Command, CommandCounts, Context, Registry
from .core.access import Access
from .core.errors import Refusal
from .core.tokens import TokenSet, TokensFileError
from .lifecycle import Lifecycle
from .log_filters import drop_werkzeug_request_lines
from .store import Store, make_store
from .web import api, dashboard
from .web.hotpath import HotPath
from .web.metrics import Metrics
from .web.request_log import log_request
from .web.state import AppState


def create_app(
    test_config: Optional[Mapping[str, Any]] = None,
    *,
    settings: Optional[Mapping[str, Any]] = None,
    commands: Optional[Iterable[type[Command]]] = None,
    store: Optional[Store] = None,
) -> Flask:
    """Build the memflask app: settings, a store, the verbs it serves, the `/<verb>` blueprint.

    `test_config` replaces the instance config (as in Flask's tutorial); `settings` are
    applied on top of the instance config and the environment (the CLI's options).
    `commands` are the verbs served (default: memflask.commands.DEFAULT_COMMANDS), and
    `store` a ready store in place of the one the settings name (a test's stub).
    """
    app = Flask(
        "memflask",
        instance_relative_config=True,
        instance_path=config.instance_path(test_config, settings),
    )
    config.load(app.config, test_config, settings)

    context = Context(
        registry=Registry(DEFAULT_COMMANDS if commands is None else commands),
        counts=CommandCounts(),
        max_key_bytes=app.config["MAX_KEY_BYTES"],
        max_value_bytes=app.config["MAX_VALUE_BYTES"],
        max_batch=app.config["MAX_BATCH"],
        started=time.monotonic(),
        max_answer_bytes=app.config["MAX_ANSWER_BYTES"],
        max_scan_keys=app.config["MAX_SCAN_KEYS"],
    )
    if store is None:
        store = make_store(app.config)
    access = Access.from_settings(
        token_set(app.config, app.instance_path),
        app.config["ALLOWED_HOSTS"],
        app.config["ALLOWED_ORIGINS"],
    )
    snapshot_path = None
    if app.config["SNAPSHOT_PATH"]:
        # Relative to the instance folder; an absolute path stays absolute.
        snapshot_path = Path(app.instance_path) / app.config["SNAPSHOT_PATH"]
    lifecycle = Lifecycle(
        store,
        snapshot_path,
        app.config["SNAPSHOT_INTERVAL"],
        max_key_bytes=app.config["MAX_KEY_BYTES"],
        max_value_bytes=app.config["MAX_VALUE_BYTES"],
    )
    state = AppState(
        store, context, access, Metrics(store), lifecycle, app.config["MAX_CONTENT_LENGTH"]
    )
    app.extensions["memflask"] = state

    logs_requests = app.config["APP_ENV"] != "production"
    if logs_requests:
        # Before the blueprints' hooks, so that a request their guard refuses is timed too.
        app.before_request(_start_clock)
    app.register_blueprint(api.bp)
    app.register_blueprint(dashboard.bp)
    app.register_error_handler(Refusal, api.refusal)
    app.register_error_handler(HTTPException, api.http_error)
    # Log through the root logger, set up here unless the host already did. Done before
    # app.logger is first used, so Flask adds no handler of its own: waitress also calls
    # basicConfig, and two handlers would print every line twice.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    drop_werkzeug_request_lines()  # flask run: memflask's line, not a second one
    if logs_requests:
        app.logger.setLevel(logging.INFO)
        app.after_request(_log_request)
    if app.config["HOT_PATH"]:
        app.wsgi_app = HotPath(app.wsgi_app, state, app.logger, log=logs_requests)  # type: ignore[method-assign]
    # Started here so that every way of serving (waitress-serve, flask run, memflask
    # serve) restores the snapshot; serving stops it through lifecycle.shutdown().
    lifecycle.startup()
    return app


def token_set(settings: Mapping[str, Any], instance: str) -> Optional[TokenSet]:
    """The tokens TOKEN and TOKENS_FILE (relative: in the instance folder) give; None when
    neither is set. A tokens file that cannot be read is a bad setting."""
    if settings["TOKEN"] is None and not settings["TOKENS_FILE"]:
        return None
    path = Path(instance) / settings["TOKENS_FILE"] if settings["TOKENS_FILE"] else None
    try:
        return TokenSet(settings["TOKEN"], path)
    except TokensFileError as error:
        raise config.ConfigError(f"TOKENS_FILE: {error}") from None


def _start_clock() -> None:
    request.environ["memflask.started"] = time.perf_counter()


def _log_request(response: Response) -> Response:
    """One line per request, as the original printed (off when APP_ENV=production)."""
    environ = request.environ
    now = time.perf_counter()
    seconds = now - environ.get("memflask.started", now)
    log_request(current_app.logger, environ, response.status_code, seconds)
    return response
