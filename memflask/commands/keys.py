"""Verbs on a key's existence and expiry: delete, touch, gat; on many keys: flush, keys."""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..core.errors import InvalidCursor, NotFound, OutOfScope
from ..core.headers import Conditions
from ..core.tokens import Grant
from ..store import DELETE, Delete, Item, ServerChange, Store
from ..store.scans import UnknownCursor
from .base import Command, WriteCommand, require_prefix
from .context import Context
from .params import Expiry, ExpiryParameter, Key, Limit, Parameter, Params
from .reads import KeyArgs
from .result import TEXT, Result, json_content


class DeleteArgs(NamedTuple):
    key: str
    conditions: Conditions
    return_value: bool


class DeleteKey(WriteCommand):
    """Remove the key; 204 whether or not it was there."""

    name = "delete"
    parameters = (Key(),)
    answers = {204: None}
    Args = DeleteArgs

    def change(self, current: Optional[Item], now: float, args: DeleteArgs) -> Delete:
        return DELETE

    def server_change(self, args: DeleteArgs) -> ServerChange:
        return ServerChange("delete")


class TouchArgs(NamedTuple):
    key: str
    expiry: Expiry
    conditions: Conditions
    return_value: bool


class Touch(WriteCommand):
    """Give an existing key a new expiry (`expire` or `ttl`, 0: never); 404 if absent."""

    name = "touch"
    parameters = (Key(), ExpiryParameter(required=True))
    refusals = (*WriteCommand.refusals, NotFound)
    Args = TouchArgs

    def change(self, current: Optional[Item], now: float, args: TouchArgs) -> Item:
        if current is None:
            raise NotFound("no such key")
        return Item(current.value, args.expiry.resolve(now))

    def server_change(self, args: TouchArgs) -> ServerChange:
        return ServerChange("touch", expiry=args.expiry)


class GetAndTouch(Touch):
    """Touch the key and answer its value (200), counted as a read like memcached's gat."""

    name = "gat"
    answers = {200: TEXT}
    reads = True


class Invalidate(Command):
    """Make the item stale (204; 404 if absent): a plain read now misses, as after a delete;
    a /get with `lease` gets the stale value (and one reader a lease to refresh it) until
    the item is written, deleted, or its expiry (and `stale` window) passes."""

    name = "invalidate"
    writes = True
    parameters = (Key(),)
    refusals = (NotFound,)
    answers = {204: None}
    Args = KeyArgs

    def apply(self, store: Store, args: KeyArgs) -> Result:
        if not store.invalidate(args.key):
            raise NotFound("no such key")
        return Result(204)


PREFIX_DESCRIPTION = "Only keys that start with this (empty: every key)."


class FlushArgs(NamedTuple):
    prefix: str


class Flush(Command):
    """Remove every key (204), or with `prefix` only the keys that start with it (200, a count).

    A prefix flush examines every key of the store (on Redis, of the database), in small
    steps: other requests go on meanwhile. In a /batch it counts against the batch's work
    budget (see /batch).
    """

    name = "flush"
    writes = True
    parameters = (Parameter("prefix", PREFIX_DESCRIPTION, required=False),)
    answers = {
        204: None,
        200: json_content(
            {
                "type": "object",
                "required": ["flushed"],
                "properties": {"flushed": {"type": "integer", "minimum": 0}},
            }
        ),
    }

    def validate(self, params: Params) -> FlushArgs:
        return FlushArgs(params.optional("prefix") or "")

    def apply(self, store: Store, args: FlushArgs) -> Result:
        if not args.prefix:
            store.flush()
            return Result(204)
        return Result(200, data={"flushed": store.delete_prefix(args.prefix)})

    def authorize(self, args: FlushArgs, grant: Grant) -> None:
        if not args.prefix:
            raise OutOfScope(f"flushing every key is for admin tokens ({grant.name!r} is not)")
        if not grant.writes:
            raise OutOfScope(f"/flush changes data: token {grant.name!r} may only read")
        require_prefix(grant, args.prefix, "prefix")

    def examines(self, store: Store, size: int, args: FlushArgs) -> int:
        return store.flush_cost(size, args.prefix)


class ListArgs(NamedTuple):
    prefix: str
    cursor: str
    limit: int


class ListKeys(Command):
    """List keys that start with `prefix`, a page at a time, as Redis SCAN does.

    Start with no cursor and pass each answer's cursor to the next request until it is
    empty: the listing is complete. A key present for the whole scan is listed at least once; a key
    may be listed twice, and a page may hold fewer than `limit` keys before the end.

    A page examines at most 10 x `limit` keys, and holds at most as many keys as fit in
    MAX_ANSWER_BYTES at their worst JSON escaping. A cursor is at most 128 characters,
    sealed by the server (an HMAC under its secret key): it goes on only the scan it came
    from, with the same `prefix`; any other is refused, 400 `invalid_cursor`.
    """

    name = "keys"
    limit = Limit()
    parameters = (
        Parameter("prefix", PREFIX_DESCRIPTION, required=False),
        Parameter("cursor", "Where the scan goes on; none (or empty) to start.", required=False),
        limit,
    )
    refusals = (InvalidCursor,)
    answers = {
        200: json_content(
            {
                "type": "object",
                "required": ["keys", "cursor"],
                "properties": {
                    "keys": {"type": "array", "items": {"type": "string"}},
                    "cursor": {"type": "string"},
                },
            }
        )
    }

    def validate(self, params: Params) -> ListArgs:
        limit = self.limit.parse(params)
        return ListArgs(
            params.optional("prefix") or "",
            params.optional("cursor") or "",
            min(limit, keys_that_fit(params.context, params.answer_bytes())),
        )

    def authorize(self, args: ListArgs, grant: Grant) -> None:
        require_prefix(grant, args.prefix, "prefix")

    def apply(self, store: Store, args: ListArgs) -> Result:
        try:
            keys, cursor = store.scan(args.prefix, args.cursor, args.limit)
        except UnknownCursor as error:
            raise InvalidCursor(str(error)) from None
        return Result(200, data={"keys": keys, "cursor": cursor})

    def examines(self, store: Store, size: int, args: ListArgs) -> int:
        return store.scan_cost(size, args.cursor, args.limit)


# A /keys answer beside its keys: `{"cursor":"<at most 128 characters>","keys":[]}`.
PAGE_FRAME_BYTES = 256
# The most JSON bytes a key's UTF-8 byte takes (an escaped control character: \u00XX).
JSON_BYTES_PER_KEY_BYTE = 6


def keys_that_fit(context: Context, answer_bytes: int) -> int:
    """The most keys a /keys page holds within `answer_bytes`, every key at its worst."""
    per_key = JSON_BYTES_PER_KEY_BYTE * context.max_key_bytes + 3  # quotes and a comma
    return max(1, (answer_bytes - PAGE_FRAME_BYTES) // per_key)
