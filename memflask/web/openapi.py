"""The OpenAPI 3.1 description of memflask's HTTP API, served at /openapi.json.

Built by walking the registry: each command describes itself (its docstring, its
parameter objects, its answers and its refusals), so this module names no verb and a
new verb appears here with nothing else edited. Every verb answers GET (parameters in
the query string) and POST (the same parameters as a form or JSON-object body); a verb
that reads a JSON document (a /batch list) is described as POST with that document.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.errors import COMMON_REFUSALS, Refusal

if TYPE_CHECKING:
    from ..commands import Command, Registry

TEXT = {"text/plain": {"schema": {"type": "string"}}}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "additionalProperties": False,
}
ETAG = {"ETag": {"description": "The item's version.", "schema": {"type": "string"}}}
REASONS = {
    200: "OK",
    204: "Done",
    304: "Not modified: the client holds this version",
    400: "Bad input; nothing changed",
    401: "Token missing or wrong",
    403: "Host, a cross-site Origin, or a request outside the token's scope, refused",
    404: "No such key, or no such verb",
    409: "The key exists",
    412: "Precondition failed; nothing changed",
    413: "Too large: a value, a body, an answer, or a batch's scans",
    415: "Unsupported body type",
    503: "The store is unavailable",
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
            )
        },
        "/metrics": {
            "get": _operation("metrics", "Prometheus text exposition.", [], {200: TEXT}, (401, 403))
        },
    }
    for command in registry.commands():
        paths[f"/{command.name}"] = _path_item(command)
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


def _path_item(command: type[Command]) -> dict[str, Any]:
    """GET and POST of one verb, from the command's own description."""
    name = command.name
    # The docstring's first line is the summary; the paragraphs after it, the description
    # (the verb's limits: MAX_ANSWER_BYTES, the work budget, the cursor rule...).
    summary, _, description = inspect.cleandoc(command.__doc__ or f"The {name} verb.").partition(
        "\n"
    )
    details = {"description": description.strip()} if description.strip() else {}
    errors = tuple(error.status for error in _refusals(command))
    if command.document_schema is not None:
        body = {"application/json": {"schema": command.document_schema}}
        post = _operation(name, summary, [], command.answers, errors, body=body)
        return {"post": {**post, **details}}
    parameters = [
        described for parameter in command.parameters for described in parameter.openapi()
    ]
    schema = {
        "type": "object",
        "properties": {parameter["name"]: parameter["schema"] for parameter in parameters},
        "required": [parameter["name"] for parameter in parameters if parameter["required"]],
    }
    form_or_json = {
        "application/x-www-form-urlencoded": {"schema": schema},
        "application/json": {"schema": schema},
    }
    return {
        "get": {**_operation(name, summary, parameters, command.answers, errors), **details},
        "post": {
            **_operation(name, summary, [], command.answers, errors, body=form_or_json),
            **details,
        },
    }


def _refusals(command: type[Command]) -> list[type[Refusal]]:
    """Every refusal a verb may answer: its own, its parameters', and the common ones."""
    refusals = [*command.refusals, *COMMON_REFUSALS]
    for parameter in command.parameters:
        refusals.extend(parameter.refusals)
    return refusals


def _operation(
    name: str,
    summary: str,
    parameters: list[dict[str, Any]],
    answers: dict[int, Any],
    errors: tuple[int, ...],
    *,
    body: Any = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{name}_{'post' if body else 'get'}",
        "summary": summary,
        "responses": _responses(answers, errors),
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    else:
        operation["parameters"] = [{**parameter, "in": "query"} for parameter in parameters]
    return operation


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
            "description": REASONS.get(status, "Refused"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return responses
