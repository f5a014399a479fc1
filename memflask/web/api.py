"""The HTTP layer under Flask: `/<verb>` hands the request to the pipeline. Knows no verb."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from ..core.errors import OutOfScope, Refusal, from_werkzeug
from . import openapi
from .pipeline import Answer, answer_verb, check_access, render_refusal
from .state import AppState

bp = Blueprint("api", __name__)

# Routes that answer without the token: load balancers probe /healthz; the dashboard's
# page and files hold no data (its script sends the token for /stats and /keys).
PUBLIC_ENDPOINTS = frozenset({"api.healthz", "dashboard.page", "dashboard.static"})
# The pipeline checks access itself, so the hot path and this view check the same way.
PIPELINE_ENDPOINTS = frozenset({"api.dispatch"})
# Routes for admin tokens only (a scoped token gets 403): the whole server's figures.
ADMIN_ENDPOINTS = frozenset({"api.metrics", "dashboard.about"})


def state() -> AppState:
    return current_app.extensions["memflask"]


@bp.before_app_request
def guard() -> None:
    """Before every other route: the Host allowlist, then the bearer token and its
    rights."""
    endpoint = request.endpoint
    if endpoint in PIPELINE_ENDPOINTS:
        return
    environ = request.environ
    if endpoint in PUBLIC_ENDPOINTS:
        state().access.check_host(environ.get("HTTP_HOST"))
        return
    grant = check_access(state(), environ)
    if grant is not None and not grant.admin and endpoint in ADMIN_ENDPOINTS:
        raise OutOfScope(f"{request.path} is for admin tokens (token {grant.name!r} is not)")


@bp.route("/healthz", methods=["GET", "HEAD"], provide_automatic_options=False)
def healthz() -> Response:
    """Liveness for load balancers: 200 while the app serves requests."""
    return current_app.json.response({"status": "ok"})


@bp.route("/openapi.json", methods=["GET", "HEAD"], provide_automatic_options=False)
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this app's verbs."""
    return current_app.json.response(openapi.build(state().context.registry))


@bp.route("/metrics", methods=["GET", "HEAD"], provide_automatic_options=False)
def metrics() -> Response:
    """Prometheus text exposition of this app's registry."""
    body = state().metrics.exposition()
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.route("/<verb>", methods=["GET", "POST", "HEAD"], provide_automatic_options=False)
def dispatch(verb: str) -> Response:
    return to_flask(answer_verb(state(), request.environ, verb))


def to_flask(answer: Answer) -> Response:
    response = Response(answer.body, answer.status, content_type=answer.content_type)
    headers = response.headers
    if answer.content_type is None:
        del headers["Content-Type"]  # no body, so no type
    for name, value in answer.headers:  # one by one: cheaper than Headers.extend
        headers.add(name, value)
    return response


def refusal(error: Refusal) -> Response:
    """Answer a refusal raised outside the pipeline (the guard) as the pipeline does."""
    return to_flask(render_refusal(error))


def http_error(error: HTTPException) -> Response:
    """Answer Werkzeug's own errors (404, 405, 413, 500...) with the same JSON error body."""
    return refusal(from_werkzeug(error))
