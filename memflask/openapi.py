"""The OpenAPI 3.1 description of memflask's HTTP API, served at /openapi.json.

Every verb answers GET (parameters in the query string) and POST (the same parameters as
a form or JSON-object body). A verb registered without an entry in VERBS is described
generically, so a plugin verb is never missing from the document.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .registry import Registry

TEXT = {"text/plain": {"schema": {"type": "string"}}}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "additionalProperties": False,
}
ETAG = {"ETag": {"description": "The item's version.", "schema": {"type": "string"}}}
STATS_COUNTERS = [
    "keyCount",
    "maxSize",
    "bytes",
    "maxBytes",
    "hits",
    "misses",
    "evictions",
    "expired",
    "uptime",
]
STATS = {
    "type": "object",
    "required": [*STATS_COUNTERS, "commands", "version"],
    "properties": {
        **{name: {"type": "integer", "minimum": 0} for name in STATS_COUNTERS},
        "commands": {"type": "object", "additionalProperties": {"type": "integer"}},
        "version": {"type": "string"},
    },
}


BATCH_RESULT = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "integer"},
        "value": {},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
}

# Parameter schemas: what the wire carries. Limits that JSON Schema cannot state
# (key length in UTF-8 bytes, 64-bit range) are in the descriptions and answered 400.
PARAMETERS = {
    "key": ({"type": "string"}, "The key: 1 to MAX_KEY_BYTES (250) UTF-8 bytes."),
    "value": ({"type": "string"}, "The value, up to MAX_VALUE_BYTES (1 MiB) of UTF-8."),
    "amount": ({"type": "string", "pattern": "^[+-]?[0-9]+$"}, "A signed 64-bit base-10 integer."),
    "expire": (
        {"type": "string", "pattern": "^[+-]?[0-9]*$"},
        "Absolute Unix seconds; empty or 0: never; at or before now: already expired.",
    ),
    "ttl": (
        {"type": "string", "pattern": "^[+-]?[0-9]*$"},
        "Seconds from now; 0: never; negative: already expired. Not with expire.",
    ),
    "compare": ({"type": "string"}, "The value the current one must equal."),
}

# verb -> (summary, parameters (name, required), success answers, refusals)
WRITE_ERRORS = (400, 412, 413)
EXPIRY = [("expire", False), ("ttl", False)]
STORES = [("key", True), ("value", True), *EXPIRY]  # the parameters of a value write
WRITTEN = {204: None, 200: TEXT}  # 200 with the value under Prefer: return=representation
VERBS: dict[str, tuple[str, list[tuple[str, bool]], dict[int, Any], tuple[int, ...]]] = {
    "get": ("Read a value.", [("key", True)], {200: TEXT, 304: None}, (400, 404)),
    "set": (
        "Store a value, replacing any item and its expiry.",
        STORES,
        WRITTEN,
        WRITE_ERRORS,
    ),
    "add": (
        "Store a value only if the key is absent.",
        STORES,
        WRITTEN,
        (*WRITE_ERRORS, 409),
    ),
    "replace": (
        "Store a value only if the key is present.",
        STORES,
        WRITTEN,
        (*WRITE_ERRORS, 404),
    ),
    "checkandset": (
        "Store a value if the current one equals compare, or the key is absent.",
        [("key", True), ("value", True), ("compare", True), *EXPIRY],
        WRITTEN,
        WRITE_ERRORS,
    ),
    "append": (
        "Add the value after the current one (absent: set); keeps the expiry.",
        STORES,
        WRITTEN,
        WRITE_ERRORS,
    ),
    "prepend": (
        "Add the value before the current one (absent: set); keeps the expiry.",
        STORES,
        WRITTEN,
        WRITE_ERRORS,
    ),
    "increment": (
        "Add value to the stored integer (absent: set to value).",
        [("key", True), ("amount", True), *EXPIRY],
        WRITTEN,
        WRITE_ERRORS,
    ),
    "decrement": (
        "Subtract value from the stored integer (absent: set to value).",
        [("key", True), ("amount", True), *EXPIRY],
        WRITTEN,
        WRITE_ERRORS,
    ),
    "delete": ("Remove the key (204 also when absent).", [("key", True)], {204: None}, (400, 412)),
    "touch": (
        "Give an existing key a new expiry.",
        [("key", True), *EXPIRY],
        WRITTEN,
        (*WRITE_ERRORS, 404),
    ),
    "gat": (
        "Read a value and give the key a new expiry.",
        [("key", True), *EXPIRY],
        {200: TEXT},
        (*WRITE_ERRORS, 404),
    ),
    "ttl": (
        "Seconds left before the key expires (null: never).",
        [("key", True)],
        {
            200: {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["key", "ttl"],
                        "properties": {
                            "key": {"type": "string"},
                            "ttl": {"type": ["integer", "null"], "minimum": 0},
                        },
                    }
                }
            }
        },
        (400, 404),
    ),
    "mget": (
        "Read many keys: a JSON object of the hits.",
        [("key", True)],
        {
            200: {
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }
        },
        (400,),
    ),
    "flush": ("Remove every key.", [], {204: None}, ()),
    "stats": ("Counters of the cache.", [], {200: {"application/json": {"schema": STATS}}}, ()),
}
# Every route may answer these: a malformed request or body (400), a token is missing (401),
# a Host or Origin refused (403), a body too large (413) or of another type (415).
COMMON_ERRORS = (400, 401, 403, 413, 415)
REASONS = {
    200: "OK",
    204: "Done",
    304: "Not modified: the client holds this version",
    400: "Bad input; nothing changed",
    401: "Token missing or wrong",
    403: "Host, or a cross-site Origin, refused",
    404: "No such key, or no such verb",
    409: "The key exists",
    412: "Precondition failed; nothing changed",
    413: "Too large",
    415: "Unsupported body type",
}


def build(registry: Registry) -> dict[str, Any]:
    """The OpenAPI document for the verbs in `registry`."""
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness: 200 while serving.",
                [],
                {
                    200: {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"status": {"const": "ok"}}}
                        }
                    }
                },
                (403,),
                public=True,
            )
        },
        "/metrics": {
            "get": _operation("metrics", "Prometheus text exposition.", [], {200: TEXT}, ())
        },
    }
    for verb in registry:
        if verb == "batch":
            paths["/batch"] = {"post": _batch_operation()}
            continue
        summary, parameters, answers, errors = VERBS.get(
            verb, (f"The {verb} verb.", [], {200: {"*/*": {}}, 204: None}, (400, 404, 409, 412))
        )
        paths[f"/{verb}"] = {
            "get": _operation(verb, summary, parameters, answers, errors),
            "post": _operation(verb, summary, parameters, answers, errors, body=True),
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "memflask",
            "version": __version__,
            "description": "An in-memory key/value cache over HTTP.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }


def _operation(verb, summary, parameters, answers, errors, *, body=False, public=False):
    operation: dict[str, Any] = {
        "operationId": f"{verb}_{'post' if body else 'get'}",
        "summary": summary,
        "responses": _responses(answers, (*errors, *COMMON_ERRORS) if not public else errors),
    }
    names = [
        (PARAMETERS.get(name, ({"type": "string"}, ""))[0], name, required)
        for name, required in parameters
    ]
    wire = {name: ("value" if name == "amount" else name) for _, name, _ in names}
    if body:
        properties = {wire[name]: schema for schema, name, _ in names}
        required = [wire[name] for _, name, needed in names if needed]
        schema = {"type": "object", "properties": properties, "required": required}
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    else:
        operation["parameters"] = [
            {
                "name": wire[name],
                "in": "query",
                "required": needed,
                "schema": schema,
                "description": PARAMETERS.get(name, (None, ""))[1],
            }
            for schema, name, needed in names
        ]
    return operation


def _batch_operation() -> dict[str, Any]:
    command = {
        "type": "object",
        "required": ["verb"],
        "properties": {"verb": {"type": "string"}},
        "additionalProperties": {"type": ["string", "integer"]},
    }
    return {
        "operationId": "batch_post",
        "summary": "Run a JSON list of commands in order; one result per command.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": command}}},
        },
        "responses": _responses(
            {200: {"application/json": {"schema": {"type": "array", "items": BATCH_RESULT}}}},
            (400, *COMMON_ERRORS),
        ),
    }


def _responses(answers: dict[int, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, content in answers.items():
        response: dict[str, Any] = {"description": REASONS.get(status, "Answered")}
        if content is not None:
            response["content"] = content
        if status in (200, 204, 304):
            response["headers"] = ETAG
        responses[str(status)] = response
    for status in sorted(set(errors)):
        responses[str(status)] = {
            "description": REASONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return responses
