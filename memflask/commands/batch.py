"""The batch verb: a JSON list of commands run in order through the same registry."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from ..core.errors import (
    AnswerTooLarge,
    InvalidBatch,
    Refusal,
    ScanBudgetExceeded,
    UnknownVerb,
    ValidationError,
)
from ..core.fields import params_from_json
from ..core.tokens import Grant
from ..store import Store
from .base import Command
from .budget import json_bounds, json_size
from .context import Context
from .execution import run
from .params import Params
from .result import Result, json_content, refused

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
        "lease": {"type": "string"},
        "retryAfter": {"type": "string"},
        "cacheStatus": {"type": "string"},
    },
}
# The answer headers a batch entry carries, as fields (a lease read's: /get?lease=).
ENTRY_HEADERS = {"Lease": "lease", "Retry-After": "retryAfter", "Cache-Status": "cacheStatus"}


class BatchEntry(NamedTuple):
    verb: str
    command: Optional[type[Command]]  # None: unknown verb, answered 404 in its place
    params: Params


class BatchArgs(NamedTuple):
    entries: list[BatchEntry]
    context: Context


class Batch(Command):
    """Run a JSON list of {"verb": ..., params} in order; answer a list of each one's result.

    A malformed batch is refused whole (400) and runs nothing. Each command is atomic on
    its own; the batch as a whole is not a transaction.

    Bounded before it runs. Work: its scans (`keys` pages, `flush` with or without a
    prefix) are costed up front in keys examined, from the store's key count (a prefix
    flush examines every key, a `keys` page up to 10 x its limit, and on the memory store
    a new scan copies the key list; a `stats` on Redis counts as 16,384); a batch whose
    scans would examine more than the key count plus MAX_SCAN_KEYS (default 1,000,000) is
    refused whole, 413 `scan_budget_exceeded`, nothing run. Answer: at most
    MAX_ANSWER_BYTES (default 16 MiB) of JSON. Every command runs; results are kept in
    order while they fit, and one that does not (and, after it, any that might not) is
    replaced by
    `{"status": 413, "error": "answer_too_large", ...}`: its command ran, its result is
    left out (read it again on its own, or in a smaller batch). A batch too long for even
    those replacements to fit is refused whole, 413 `answer_too_large`, nothing run.
    """

    name = "batch"
    writes = True
    document_schema = {"type": "array", "items": ENTRY_SCHEMA}
    refusals = (InvalidBatch, AnswerTooLarge, ScanBudgetExceeded)
    answers = {200: json_content({"type": "array", "items": OUTCOME_SCHEMA})}

    def validate(self, params: Params) -> BatchArgs:
        document = params.document
        if not isinstance(document, list):
            raise InvalidBatch("batch needs a JSON list of commands as its body")
        limit = params.context.max_batch
        if len(document) > limit:
            raise InvalidBatch(f"at most {limit} commands per batch")
        entries = [
            self._entry(index, entry, params.context) for index, entry in enumerate(document)
        ]
        return BatchArgs(entries, params.context)

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

    def authorize(self, args: BatchArgs, grant: Grant) -> None:
        """Every entry as if sent alone, before any runs: one out of scope refuses the
        batch whole (an entry that does not validate is refused on its own when it runs)."""
        for entry in args.entries:
            if entry.command is None:
                continue
            command = entry.command()
            try:
                entry_args = command.validate(entry.params)
            except Refusal:
                continue
            command.authorize(entry_args, grant)

    def apply(self, store: Store, args: BatchArgs) -> Result:
        entries, context = args
        check_scan_budget(store, entries, context.max_scan_keys)
        limit = context.max_answer_bytes
        left_out = outcome(refused(AnswerTooLarge(LEFT_OUT.format(limit=limit))))
        reserved = json_size(left_out)  # each result's room, kept for it until it comes
        # The answer: brackets, commas and a newline, then each result or its left_out.
        free = limit - (len(entries) + 2) - len(entries) * reserved
        if free < 0:
            raise AnswerTooLarge(
                f"{len(entries)} results cannot fit in MAX_ANSWER_BYTES ({limit} bytes), "
                f"even each cut to {reserved} bytes; send at most "
                f"{max(1, (limit - 2) // (reserved + 1))} commands; nothing ran"
            )
        outcomes = []
        surely_only = False  # once one was left out, keep only results that surely fit
        for entry in entries:
            room = free + reserved
            result = outcome(self._run(store, entry, context, room))
            least, most = json_bounds(result)
            size = None
            if most <= min(room, SMALL_RESULT_BYTES):
                size = most  # a small result is charged its most: no encoding
            elif least <= room and (most <= room or not surely_only):
                size = json_size(result)  # past `room` at most once: bounded work
            if size is None or size > room:
                outcomes.append(left_out)
                surely_only = True
            else:
                outcomes.append(result)
                free -= size - reserved
        return Result(200, data=outcomes)

    @staticmethod
    def _run(store: Store, entry: BatchEntry, context: Context, room: int) -> Result:
        command = entry.command
        if command is None:
            return refused(UnknownVerb(f"unknown verb {entry.verb!r}"))
        # An /mget or a /keys page answers at most the room left, and a get on Redis reads
        # a value only if it may fit: they read no more than that.
        entry.params.answer_room = room
        return run(command, store, entry.params)


# A result this small at most is charged its most, as a bound: measuring it exactly would
# cost more than the bytes it may overstate (1,000 of them, at most 1 MB of 16 MiB).
SMALL_RESULT_BYTES = 1024
# The result left out of a batch's answer, for want of room.
LEFT_OUT = (
    "left out: the answer would pass MAX_ANSWER_BYTES ({limit} bytes); the command ran, "
    "read its result on its own or in a smaller batch"
)


def check_scan_budget(store: Store, entries: list[BatchEntry], max_scan_keys: int) -> None:
    """Refuse the batch, before any command runs, if its scans may examine more keys than
    one pass over the store plus `max_scan_keys`."""
    scanning = [entry for entry in entries if entry.command is not None and entry.command.scans()]
    if not scanning:
        return
    size = store.scan_size()
    examined = 0
    for entry in scanning:
        command = entry.command()  # type: ignore[misc]
        try:
            args = command.validate(entry.params)
        except Refusal:
            continue  # refused when it runs, having examined nothing
        examined += command.examines(store, size, args)
    if examined > size + max_scan_keys:
        raise ScanBudgetExceeded(
            f"this batch's scans may examine {examined:,} keys, more than the store's "
            f"{size:,} plus MAX_SCAN_KEYS ({max_scan_keys:,}); nothing ran: send fewer "
            "scans (keys pages, prefix flushes, stats on Redis) per batch"
        )


def outcome(result: Result) -> dict[str, Any]:
    """One command's result as a batch entry: its status, and its value or its error body."""
    entry: dict[str, Any] = {"status": result.status}
    if result.status >= 400:
        entry.update(result.data)
    elif result.value is not None:
        entry["value"] = result.value
    elif result.data is not None:
        entry["value"] = result.data
    for name, value in result.headers:
        if name in ENTRY_HEADERS:
            entry[ENTRY_HEADERS[name]] = value
    return entry
