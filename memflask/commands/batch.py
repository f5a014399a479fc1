"""The batch verb: a JSON list of commands run in order through the same registry."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from ..errors import InvalidBatch, UnknownVerb, ValidationError
from ..params import Params, params_from_json
from ..store import Store
from .base import Command, Context, Result, json_content, refused, run

ENTRY_SCHEMA = {
    "type": "object",
    "required": ["verb"],
    "properties": {"verb": {"type": "string"}},
    "additionalProperties": {"type": ["string", "integer"]},
}
OUTCOME_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "integer"},
        "value": {},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
}


class BatchEntry(NamedTuple):
    verb: str
    command: Optional[type[Command]]  # None: unknown verb, answered 404 in its place
    params: Params


class Batch(Command):
    """Run a JSON list of {"verb": ..., params} in order; answer a list of each one's result.

    A malformed batch is refused whole (400) and runs nothing. Each command is atomic on
    its own; the batch as a whole is not a transaction.
    """

    name = "batch"
    writes = True
    document_schema = {"type": "array", "items": ENTRY_SCHEMA}
    refusals = (InvalidBatch,)
    answers = {200: json_content({"type": "array", "items": OUTCOME_SCHEMA})}

    def validate(self, params: Params) -> list[BatchEntry]:
        document = params.document
        if not isinstance(document, list):
            raise InvalidBatch("batch needs a JSON list of commands as its body")
        limit = params.context.max_batch
        if len(document) > limit:
            raise InvalidBatch(f"at most {limit} commands per batch")
        return [self._entry(index, entry, params.context) for index, entry in enumerate(document)]

    def _entry(self, index: int, entry: Any, context: Context) -> BatchEntry:
        if not isinstance(entry, dict) or not isinstance(entry.get("verb"), str):
            raise InvalidBatch(f"command {index} must be a JSON object with a string 'verb'")
        fields = dict(entry)
        verb = fields.pop("verb")
        if verb == self.name:
            raise InvalidBatch(f"command {index}: a batch cannot contain a batch")
        try:
            values = params_from_json(fields, context.max_fields)
        except ValidationError as error:
            raise type(error)(f"command {index}: {error.message}") from None
        return BatchEntry(verb, context.registry.get(verb), Params(values, context))

    def apply(self, store: Store, entries: list[BatchEntry]) -> Result:
        return Result(200, data=[outcome(self._run(store, entry)) for entry in entries])

    @staticmethod
    def _run(store: Store, entry: BatchEntry) -> Result:
        if entry.command is None:
            return refused(UnknownVerb(f"unknown verb {entry.verb!r}"))
        return run(entry.command, store, entry.params)


def outcome(result: Result) -> dict[str, Any]:
    """One command's result as a batch entry: its status, and its value or its error body."""
    entry: dict[str, Any] = {"status": result.status}
    if result.status >= 400:
        entry.update(result.data)
    elif result.value is not None:
        entry["value"] = result.value
    elif result.data is not None:
        entry["value"] = result.data
    return entry
