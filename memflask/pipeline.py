"""The request pipeline: a WSGI environ and the app's state in, status, headers and body out.

Plain functions that use neither `flask.request` nor `current_app`, so the blueprint's
`/<verb>` view and a WSGI-level caller without Flask's request context run the very same
steps: access checks, the verb from the registry, parameters read from the query and
the body, `run()`, metrics, rendering.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Optional
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_input_stream

from .commands.base import Command, Context, Result, refused, run
from .errors import (
    DuplicateParameter,
    InvalidBody,
    InvalidEncoding,
    InvalidJson,
    MethodNotAllowed,
    Refusal,
    RequestTooLarge,
    TooManyParameters,
    UnknownVerb,
    UnsupportedMediaType,
)
from .headers import Conditions, entity_tag, prefers_representation
from .metrics import Metrics
from .params import Params, params_from_json
from .security import Access
from .store import Store

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
MAX_LOGGED_PATH = 200
# Percent-decoding works on pieces this long: unquote_to_bytes lists every escape.
UNQUOTE_CHUNK = 64 * 1024
# A JSON body's structure: nesting a /batch of lists of values needs 3 levels.
MAX_JSON_DEPTH = 8
# Commas and colons per parameter (a name's colon, a comma after it; a batch entry's verb).
JSON_TOKENS_PER_FIELD = 8
_BRACKETS = re.compile(rb"[\[\]{}]")
BACKSLASH = ord("\\")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class State(NamedTuple):
    """Per-app state, kept in app.extensions["memflask"]."""

    store: Store
    context: Context
    access: Access
    metrics: Metrics
    lifecycle: Lifecycle
    max_body_bytes: int  # MAX_CONTENT_LENGTH


class Answer(NamedTuple):
    """A rendered response; the server adapter adds Content-Length (absent on 204 and 304)."""

    status: int
    content_type: Optional[str]  # None: no body
    body: bytes
    headers: list[tuple[str, str]]  # ETag, WWW-Authenticate, Allow


def answer_verb(state: State, environ: dict[str, Any], verb: str) -> Answer:
    """Check access, run `verb` on the request in `environ`, and render its result."""
    try:
        command = admit(state, environ, verb)
    except Refusal as error:
        return render(refused(error))
    started = time.perf_counter()
    try:
        result = run(command, state.store, read_params(environ, command, state))
    except Refusal as error:  # refused while reading the request itself
        result = refused(error)
    state.metrics.observe(verb, result.status, time.perf_counter() - started)
    return render(result)


def check_access(state: State, environ: dict[str, Any]) -> None:
    """The Host allowlist, then the bearer token (every route but the public ones)."""
    state.access.check_host(environ.get("HTTP_HOST"))
    if state.access.token is not None:
        state.access.check_token(environ.get("HTTP_AUTHORIZATION"))


def admit(state: State, environ: dict[str, Any], verb: str) -> type[Command]:
    """The command for `verb`, once the request may run it; raise a Refusal otherwise."""
    check_access(state, environ)
    command = state.context.registry.get(verb)
    if command is None:
        raise UnknownVerb(f"unknown verb {verb!r}")
    if command.writes:
        if environ.get("REQUEST_METHOD") == "HEAD":
            raise MethodNotAllowed(f"/{verb} changes data: use GET or POST")
        state.access.check_not_cross_site(
            environ.get("HTTP_ORIGIN"), environ.get("HTTP_SEC_FETCH_SITE")
        )
    return command


def read_params(environ: dict[str, Any], command: type[Command], state: State) -> Params:
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


def parse_form(data: bytes, max_fields: int) -> dict[str, list[str]]:
    """Parse `a=1&b=2` (the query string's bytes, or a form body) strictly as UTF-8.

    Not parse_qsl: it decodes with replacement characters, where a parameter that is not
    UTF-8 must be refused. Fields are cut one at a time and percent-decoded in chunks, so
    parsing holds about twice the request's size at most (a list of every escape held
    80 times the size: a 6 MiB form body of %41 took 470 MiB).
    """
    values: dict[str, list[str]] = {}
    if not data:
        return values
    if data.count(b"&") >= max_fields:
        raise TooManyParameters(f"more than {max_fields} parameters")
    start = 0
    try:
        while start <= len(data):
            end = data.find(b"&", start)
            if end == -1:
                end = len(data)
            if end > start:
                equals = data.find(b"=", start, end)
                if equals == -1:
                    name, value = _unquote(data, start, end), ""
                else:
                    name, value = _unquote(data, start, equals), _unquote(data, equals + 1, end)
                values.setdefault(name, []).append(value)
            start = end + 1
    except UnicodeDecodeError:
        raise InvalidEncoding("parameters must be valid UTF-8") from None
    return values


def _unquote(data: bytes, start: int, end: int) -> str:
    """Decode data[start:end], one form-encoded field: '+' is a space, %XX a byte; the
    bytes must be UTF-8. A long field is decoded a chunk at a time, never copied whole."""
    if end - start <= UNQUOTE_CHUNK:  # nearly every field: one slice, most need no decoding
        field = data[start:end]
        if b"+" in field:
            field = field.replace(b"+", b" ")
        return (unquote_to_bytes(field) if b"%" in field else field).decode("utf-8")
    pieces = []
    while start < end:
        stop = min(start + UNQUOTE_CHUNK, end)
        if stop < end:
            escape = data.rfind(b"%", stop - 2, stop)
            stop = escape if escape > start else stop  # never cut an escape in two
        chunk = data[start:stop]
        if b"+" in chunk:
            chunk = chunk.replace(b"+", b" ")
        pieces.append(unquote_to_bytes(chunk) if b"%" in chunk else chunk)
        start = stop
    return b"".join(pieces).decode("utf-8")


def parse_json(body: bytes, max_fields: int) -> object:
    """Parse a JSON body, refusing one too large or too deep in structure before parsing."""
    check_json_structure(body, JSON_TOKENS_PER_FIELD * max_fields)
    try:
        return json.loads(body, object_pairs_hook=_object_without_repeats)
    except Refusal:
        raise
    except UnicodeDecodeError:
        raise InvalidEncoding("the JSON body must be valid UTF-8") from None
    except (ValueError, RecursionError) as error:
        raise InvalidJson(f"the body is not valid JSON: {error}") from None


def check_json_structure(body: bytes, max_tokens: int) -> None:
    """Refuse a body with more commas and colons, or more nesting, than parameters need.

    Counted outside strings only (a value may hold any number of them), before json.loads
    builds anything: 700,000 one-byte parameters in 6 MiB took 330 MiB and seconds.
    """
    tokens = depth = 0
    position = 0
    while position < len(body):
        quote = body.find(b'"', position)
        end = len(body) if quote == -1 else quote
        tokens += body.count(b",", position, end) + body.count(b":", position, end)
        if tokens > max_tokens:
            raise TooManyParameters(f"more than {max_tokens // JSON_TOKENS_PER_FIELD} parameters")
        for bracket in _BRACKETS.finditer(body, position, end):
            depth += 1 if bracket.group() in b"[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        if quote == -1:
            return
        position = _string_end(body, quote + 1) + 1


def _string_end(body: bytes, start: int) -> int:
    """The index of the quote that closes the JSON string starting at `start`."""
    while True:
        quote = body.find(b'"', start)
        if quote == -1:
            return len(body)  # unterminated: json.loads says so
        backslashes = 0
        while quote - backslashes - 1 >= start and body[quote - backslashes - 1] == BACKSLASH:
            backslashes += 1
        if backslashes % 2 == 0:
            return quote
        start = quote + 1


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a name given twice is refused, as a repeated query parameter is."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise DuplicateParameter(f"parameter {repeated!r} was given more than once")
    return document


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


def log_request(logger: Any, environ: dict[str, Any], status: int, seconds: float) -> None:
    """One line per request: method, path, status and duration.

    Never the query string or the body: they carry keys, values and their sizes (a
    1 MiB value made a 1 MiB line). Control characters in the path are escaped, so a
    request cannot forge a second log line.
    """
    method = _escaped(environ.get("REQUEST_METHOD", ""))
    path = _escaped(environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"))
    logger.info("%s %s %s %.2fms", method, path[:MAX_LOGGED_PATH], status, seconds * 1000)


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
