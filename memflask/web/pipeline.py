"""The request pipeline: a WSGI environ and the app's state in, status, headers and body out.

Plain functions that use neither `flask.request` nor `current_app`, so the blueprint's
`/<verb>` view and a WSGI-level caller without Flask's request context run the very same
steps: access checks, the verb from the registry, parameters read from the query and
the body, `run()`, metrics, rendering.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple, Optional

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_input_stream

from ..commands import Command, Params, Result, params_from_json, refused, run
from ..core.errors import (
    InvalidBody,
    MethodNotAllowed,
    Refusal,
    RequestTooLarge,
    UnknownVerb,
    UnsupportedMediaType,
)
from ..core.fields import parse_form, parse_json
from ..core.headers import Conditions, entity_tag, prefers_representation
from ..core.tokens import Grant
from .request_log import TOKEN_NAME
from .state import AppState

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


class Answer(NamedTuple):
    """A rendered response; the server adapter adds Content-Length (absent on 204 and 304)."""

    status: int
    content_type: Optional[str]  # None: no body
    body: bytes
    headers: list[tuple[str, str]]  # ETag, WWW-Authenticate, Allow


def answer_verb(state: AppState, environ: dict[str, Any], verb: str) -> Answer:
    """Check access, run `verb` on the request in `environ`, and render its result."""
    try:
        command, grant = admit(state, environ, verb)
    except Refusal as error:
        return render(refused(error))
    started = time.perf_counter()
    try:
        params = read_params(environ, command, state)
        params.grant = grant
        result = run(command, state.store, params)
    except Refusal as error:  # refused while reading the request itself
        result = refused(error)
    state.metrics.observe(verb, result.status, time.perf_counter() - started)
    return render(result)


def check_access(state: AppState, environ: dict[str, Any]) -> Optional[Grant]:
    """The Host allowlist, then the bearer token (every route but the public ones): what
    the request's token may do (None: no token is needed)."""
    state.access.check_host(environ.get("HTTP_HOST"))
    if state.access.tokens is None:
        return None
    grant = state.access.check_token(environ.get("HTTP_AUTHORIZATION"))
    if grant is not None and grant.name:
        environ[TOKEN_NAME] = grant.name  # for the request log (never the token)
    return grant


def admit(
    state: AppState, environ: dict[str, Any], verb: str
) -> tuple[type[Command], Optional[Grant]]:
    """The command for `verb` and the request's grant, once the request may run it;
    raise a Refusal otherwise (the grant's scope is checked on the command's arguments)."""
    grant = check_access(state, environ)
    command = state.context.registry.get(verb)
    if command is None:
        raise UnknownVerb(f"unknown verb {verb!r}")
    if command.writes:
        if environ.get("REQUEST_METHOD") == "HEAD":
            raise MethodNotAllowed(f"/{verb} changes data: use GET or POST")
        state.access.check_not_cross_site(
            environ.get("HTTP_ORIGIN"), environ.get("HTTP_SEC_FETCH_SITE")
        )
    return command, grant


def read_params(environ: dict[str, Any], command: type[Command], state: AppState) -> Params:
    """Collect parameters from the query string and a form or JSON body, strictly as UTF-8."""
    context = state.context
    max_fields = context.max_fields
    values = parse_form(environ.get("QUERY_STRING", "").encode("latin-1"), max_fields)
    document = None
    body = read_body(environ, state.max_body_bytes)
    if body:
        mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        if mimetype == FORM:
            _merge(values, parse_form(body, max_fields))
        elif mimetype == JSON:
            document = parse_json(body, max_fields)
            if isinstance(document, dict):
                _merge(values, params_from_json(document, max_fields))
                document = None
            elif not command.accepts_document():
                raise InvalidBody(f"/{command.name} needs a JSON object body")
        else:
            raise UnsupportedMediaType(f"send the body as {FORM} or {JSON}")
    return Params(
        values,
        context,
        conditions=Conditions.from_headers(
            environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
        ),
        return_value=prefers_representation(environ.get("HTTP_PREFER")),
        document=document,
    )


def read_body(environ: dict[str, Any], max_body_bytes: Optional[int]) -> bytes:
    """The request body (b"" when there is none), refused over `max_body_bytes`."""
    has_body = environ.get("CONTENT_LENGTH", "0") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in environ
    )
    if not has_body:
        return b""
    try:
        return get_input_stream(environ, max_content_length=max_body_bytes).read()
    except RequestEntityTooLarge as error:
        raise RequestTooLarge(error.description or "the body is too large") from None


def _merge(values: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for name, extra in more.items():
        values.setdefault(name, []).extend(extra)


# -- rendering ----------------------------------------------------------------------------


def render(result: Result) -> Answer:
    """Turn a result into a response: a text value, JSON data, or no body."""
    headers = list(result.headers)
    if result.version is not None:
        headers.append(("ETag", entity_tag(result.version)))
    if result.value is not None:
        return Answer(result.status, TEXT_TYPE, result.value.encode("utf-8"), headers)
    if result.data is not None:
        return Answer(result.status, JSON, json_bytes(result.data), headers)
    return Answer(result.status, None, b"", headers)


def render_refusal(error: Refusal) -> Answer:
    return render(refused(error))


def json_bytes(data: Any) -> bytes:
    """JSON as Flask's default provider writes it: compact, keys sorted, ASCII, a newline."""
    return (json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n").encode()
