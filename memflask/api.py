"""The HTTP layer: `/<verb>` looks the verb up in the registry and runs it. Knows no verb."""

from __future__ import annotations

import json
import time
from typing import NamedTuple, Optional
from urllib.parse import unquote_to_bytes

from flask import Blueprint, Request, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import openapi
from .commands.base import (
    Command,
    CommandError,
    Conditions,
    Context,
    Params,
    Result,
    UnknownVerb,
    ValidationError,
    entity_tag,
    params_from_json,
    run,
)
from .metrics import Metrics
from .security import Access
from .snapshot import PeriodicSaver
from .store import Store

bp = Blueprint("api", __name__)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# Parameters one request may carry: enough for the largest /mget, few enough to parse fast.
EXTRA_FIELDS = 64


class State(NamedTuple):
    """Per-app state, kept in app.extensions["memflask"]."""

    store: Store
    context: Context
    access: Access
    metrics: Metrics
    snapshots: Optional[PeriodicSaver]  # None unless SNAPSHOT_PATH is set


# Routes that answer without the token: load balancers probe them.
PUBLIC_ENDPOINTS = frozenset({"api.healthz"})


@bp.before_app_request
def guard() -> None:
    """Before every route: the Host allowlist, then the bearer token."""
    req = request._get_current_object()  # one proxy lookup rather than one per use
    access = current_app.extensions["memflask"].access
    access.check_host(req.environ.get("HTTP_HOST"))
    if access.token is not None and req.endpoint not in PUBLIC_ENDPOINTS:
        access.check_token(req.authorization)


@bp.route("/healthz", methods=["GET", "HEAD"], provide_automatic_options=False)
def healthz() -> Response:
    """Liveness for load balancers: 200 while the app serves requests."""
    return current_app.json.response({"status": "ok"})


@bp.route("/openapi.json", methods=["GET", "HEAD"], provide_automatic_options=False)
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this app's verbs."""
    return current_app.json.response(
        openapi.build(current_app.extensions["memflask"].context.registry)
    )


@bp.route("/metrics", methods=["GET", "HEAD"], provide_automatic_options=False)
def metrics() -> Response:
    """Prometheus text exposition of this app's registry."""
    body = current_app.extensions["memflask"].metrics.exposition()
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)


class UnsupportedMediaType(CommandError):
    status = 415
    code = "unsupported_media_type"


@bp.route("/<verb>", methods=["GET", "POST", "HEAD"], provide_automatic_options=False)
def dispatch(verb: str) -> Response:
    req = request._get_current_object()  # one proxy lookup rather than one per use
    state: State = current_app.extensions["memflask"]
    command = state.context.registry.get(verb)
    if command is None:
        raise UnknownVerb(f"unknown verb {verb!r}")
    if command.writes:
        if req.method == "HEAD":
            # HEAD must be safe; a write verb answers GET and POST only.
            raise MethodNotAllowed(["GET", "POST"], f"/{verb} changes data: use GET or POST")
        state.access.check_not_cross_site(
            req.environ.get("HTTP_ORIGIN"), req.environ.get("HTTP_SEC_FETCH_SITE")
        )
    started = time.perf_counter()
    try:
        result = run(command, state.store, read_params(req, command, state.context))
    except CommandError as error:  # refused while reading the request itself
        result = error.result()
    state.metrics.observe(verb, result.status, time.perf_counter() - started)
    return to_response(result)


def read_params(req: Request, command: type[Command], context: Context) -> Params:
    """Collect parameters from the query string and a form or JSON body, strictly as UTF-8."""
    # Headers come straight from the WSGI environ: cheaper than Werkzeug's header lookup.
    environ = req.environ
    max_fields = context.max_batch + EXTRA_FIELDS
    values = _parse_form(environ.get("QUERY_STRING", ""), max_fields)
    document = None
    has_body = environ.get("CONTENT_LENGTH", "0") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in environ
    )
    body = req.get_data(cache=False) if has_body else b""
    if body:
        if req.mimetype == FORM:
            _merge(values, _parse_form(body.decode("latin-1"), max_fields))
        elif req.mimetype == JSON:
            document = _parse_json(body)
            if isinstance(document, dict):
                _merge(values, params_from_json(document))
                document = None
            elif not command.accepts_document:
                raise ValidationError(f"/{command.name} needs a JSON object body", "invalid_body")
        else:
            raise UnsupportedMediaType(f"send the body as {FORM} or {JSON}")
    return Params(
        values,
        context,
        conditions=Conditions.from_headers(
            environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
        ),
        return_value=_prefers_representation(environ.get("HTTP_PREFER")),
        document=document,
    )


def _parse_form(text: str, max_fields: int) -> dict[str, list[str]]:
    """Parse `a=1&b=2` given one character per byte (latin-1, as WSGI gives the query).

    Not parse_qsl: it decodes with replacement characters, where a parameter that is not
    UTF-8 must be refused; and most fields are plain ASCII that need no unquoting at all.
    """
    values: dict[str, list[str]] = {}
    if not text:
        return values
    fields = text.split("&")
    if len(fields) > max_fields:
        raise ValidationError(f"more than {max_fields} parameters", "too_many_parameters")
    try:
        for field in fields:
            if field:
                name, _, value = field.partition("=")
                values.setdefault(_unquote(name), []).append(_unquote(value))
    except UnicodeDecodeError:
        raise ValidationError("parameters must be valid UTF-8", "invalid_encoding") from None
    return values


def _unquote(field: str) -> str:
    """Decode one form-encoded field: '+' is a space, %XX a byte; the bytes must be UTF-8."""
    if field.isascii() and "%" not in field and "+" not in field:
        return field
    return unquote_to_bytes(field.encode("latin-1").replace(b"+", b" ")).decode("utf-8")


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ValidationError("the JSON body must be valid UTF-8", "invalid_encoding") from None
    except ValueError as error:
        raise ValidationError(f"the body is not valid JSON: {error}", "invalid_json") from None


def _merge(values: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for name, extra in more.items():
        values.setdefault(name, []).extend(extra)


def _prefers_representation(prefer: Optional[str]) -> bool:
    if not prefer:
        return False
    tokens = prefer.replace(";", ",").split(",")
    return any(token.strip().lower() == "return=representation" for token in tokens)


def to_response(result: Result) -> Response:
    """Turn a command's result into a response: text value, JSON data, or no body."""
    if result.value is not None:
        response = Response(result.value, result.status, mimetype="text/plain")
    elif result.data is not None:
        response = current_app.json.response(result.data)
        response.status_code = result.status
    else:
        response = Response(status=result.status)
        del response.headers["Content-Type"]  # no body, so no type
    if result.version is not None:
        response.headers["ETag"] = entity_tag(result.version)
    return response


def command_error(error: CommandError) -> Response:
    return to_response(error.result())


def http_error(error: HTTPException) -> Response:
    """Answer Werkzeug's own errors (404, 405, 413, 500...) with the same JSON error body."""
    code = (error.name or "error").lower().replace(" ", "_")
    response = current_app.json.response({"error": code, "message": error.description})
    response.status_code = error.code or 500
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
