"""The batch verb: a JSON list of commands run in order through the same registry."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from ..registry import default_registry
from ..store import Store
from .base import (
    Command,
    Context,
    Params,
    Result,
    UnknownVerb,
    ValidationError,
    params_from_json,
    run,
)


class BatchEntry(NamedTuple):
    verb: str
    command: Optional[type[Command]]  # None: unknown verb, answered 404 in its place
    params: Params


@default_registry.register
class Batch(Command):
    """POST a JSON list of {"verb": ..., params}; answer a list of each command's own result.

    A malformed batch is refused whole (400) and runs nothing. Each command is atomic on
    its own; the batch as a whole is not a transaction.
    """

    name = "batch"
    writes = True
    accepts_document = True

    def validate(self, params: Params) -> list[BatchEntry]:
        document = params.document
        if not isinstance(document, list):
            raise ValidationError(
                "batch needs a JSON list of commands as its body", "invalid_batch"
            )
        limit = params.context.max_batch
        if len(document) > limit:
            raise ValidationError(f"at most {limit} commands per batch", "invalid_batch")
        return [self._entry(index, entry, params.context) for index, entry in enumerate(document)]

    def _entry(self, index: int, entry: Any, context: Context) -> BatchEntry:
        if not isinstance(entry, dict) or not isinstance(entry.get("verb"), str):
            raise ValidationError(
                f"command {index} must be a JSON object with a string 'verb'", "invalid_batch"
            )
        fields = dict(entry)
        verb = fields.pop("verb")
        if verb == self.name:
            raise ValidationError(
                f"command {index}: a batch cannot contain a batch", "invalid_batch"
            )
        try:
            values = params_from_json(fields)
        except ValidationError as error:
            raise ValidationError(f"command {index}: {error.message}", error.code) from None
        return BatchEntry(verb, context.registry.get(verb), Params(values, context))

    def apply(self, store: Store, entries: list[BatchEntry]) -> Result:
        return Result(200, data=[self._outcome(store, entry) for entry in entries])

    @staticmethod
    def _outcome(store: Store, entry: BatchEntry) -> dict:
        if entry.command is None:
            result = UnknownVerb(f"unknown verb {entry.verb!r}").result()
        else:
            result = run(entry.command, store, entry.params)
        outcome: dict[str, Any] = {"status": result.status}
        if result.status >= 400:
            outcome.update(result.data)
        elif result.value is not None:
            outcome["value"] = result.value
        elif result.data is not None:
            outcome["value"] = result.data
        return outcome
