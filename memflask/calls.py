"""What a client sends: a `Call` (one command, and how its answer becomes the result),
or, for a client on several servers, a `Spread` of calls on many keys or an `Everywhere`
call for every server (memflask.sharding plans them; memflask.protocol builds them)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

Value = Union[str, int]

Fields = Union[Mapping[str, Value], list[tuple[str, Value]], None]


# Call.missing's default: no result stands for an answer that never came (it raises).
UNANSWERED = object()


class Call(NamedTuple):
    """One command to send, and how its answer becomes the method's result. `verb` None:
    nothing to send (an empty get_many), `result(0, b"")` is the result. `missing` is the
    result when the server is unavailable and the client ignores that (a read's miss, a
    dropped write's False); UNANSWERED: the error is raised all the same."""

    verb: Optional[str]
    result: Callable[[int, bytes], Any]
    fields: Fields = None
    json_body: Optional[list] = None
    allowed: tuple[int, ...] = ()  # statuses answered, not raised
    prefer_value: bool = False  # `Prefer: return=representation`: the new value back
    if_present: bool = False  # `If-Match: *`: the write applies only to a key that exists
    missing: Any = UNANSWERED

    @property
    def key(self) -> Optional[str]:
        """The one key the command names, which places it on a server (None: none)."""
        return self.fields.get("key") if isinstance(self.fields, Mapping) else None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of a client's `_call` (its wire method) for this command."""
        return {
            "json_body": self.json_body,
            "allowed": self.allowed,
            "prefer_value": self.prefer_value,
            "if_present": self.if_present,
        }


class Spread(NamedTuple):
    """A call on many items (keys, /batch commands), each with the caller's index:
    `build(items)` is the call for some of them, one per server that holds some; `merge`
    joins the results, given as (items, result) pairs, into the method's result, in the
    caller's order. `key_of` gives an item's key, which places it."""

    items: list[tuple[int, Any]]
    build: Callable[[list[tuple[int, Any]]], Call]
    merge: Callable[[list[tuple[list[tuple[int, Any]], Any]]], Any]
    key_of: Callable[[tuple[int, Any]], str]


class Everywhere(NamedTuple):
    """A call for every server (flush, stats, prefix deletion); `merge` joins the results,
    given as (server URL, result) pairs, into the method's result."""

    call: Call
    merge: Callable[[list[tuple[str, Any]]], Any]


Plan = Union[Call, Spread, Everywhere]
