"""Verbs that store a value: set, add, replace, checkandset, append, prepend."""

from __future__ import annotations

from typing import NamedTuple, Optional

from .. import limits
from ..core.errors import CompareMismatch, Exists, NotFound
from ..core.headers import Conditions
from ..store import Item, ServerChange
from .base import WriteCommand, grown_item
from .params import (
    Expiry,
    ExpiryParameter,
    Key,
    LeaseToken,
    Parameter,
    Params,
    Seconds,
    Value,
)

# The parameters of a write that may fill a lease and keep a stale copy (stampedes).
LEASE_PARAMETERS = (
    LeaseToken(),
    Seconds(
        "stale",
        "Keep the item this long past its expiry, stale, for /get?lease= readers "
        "(stale-while-revalidate); no effect on an item that never expires",
        1,
        limits.MAX_STALE_SECONDS,
    ),
)


class StoreArgs(NamedTuple):
    key: str
    value: str
    expiry: Expiry
    lease: Optional[str]
    stale: Optional[int]
    conditions: Conditions
    return_value: bool


class StoreCommand(WriteCommand):
    """A verb that stores `value` under `key`, with an optional expiry."""

    parameters = (Key(), Value(), ExpiryParameter(), *LEASE_PARAMETERS)
    Args = StoreArgs


class Set(StoreCommand):
    """Store a value, replacing any item and its expiry (no expiry given: never expires)."""

    name = "set"

    def change(self, current: Optional[Item], now: float, args: StoreArgs) -> Item:
        return Item(args.value, args.expiry.resolve(now))

    def server_change(self, args: StoreArgs) -> ServerChange:
        return ServerChange("set", args.value, expiry=args.expiry)


class Add(StoreCommand):
    """Store a value only if the key is absent (409 otherwise), as memcached's add."""

    name = "add"
    refusals = (*StoreCommand.refusals, Exists)

    def change(self, current: Optional[Item], now: float, args: StoreArgs) -> Item:
        if current is not None:
            raise Exists("the key already exists")
        return Item(args.value, args.expiry.resolve(now))

    def server_change(self, args: StoreArgs) -> ServerChange:
        return ServerChange("add", args.value, expiry=args.expiry)


class Replace(StoreCommand):
    """Store a value only if the key is present (404 otherwise), as memcached's replace."""

    name = "replace"
    refusals = (*StoreCommand.refusals, NotFound)

    def change(self, current: Optional[Item], now: float, args: StoreArgs) -> Item:
        if current is None:
            raise NotFound("no such key")
        return Item(args.value, args.expiry.resolve(now))

    def server_change(self, args: StoreArgs) -> ServerChange:
        return ServerChange("replace", args.value, expiry=args.expiry)


class CompareArgs(NamedTuple):
    key: str
    value: str
    compare: str
    expiry: Expiry
    lease: Optional[str]
    stale: Optional[int]
    conditions: Conditions
    return_value: bool


class CheckAndSet(WriteCommand):
    """Store a value if the current one equals `compare`, or if the key is absent."""

    name = "checkandset"
    parameters = (
        Key(),
        Value(),
        Parameter("compare", "The value the current one must equal."),
        ExpiryParameter(),
        *LEASE_PARAMETERS,
    )
    refusals = (*WriteCommand.refusals, CompareMismatch)
    Args = CompareArgs

    def change(self, current: Optional[Item], now: float, args: CompareArgs) -> Item:
        if current is not None and current.value != args.compare:
            raise CompareMismatch("the current value does not equal 'compare'; nothing changed")
        return Item(args.value, args.expiry.resolve(now))

    def server_change(self, args: CompareArgs) -> ServerChange:
        return ServerChange("checkandset", args.value, args.compare, expiry=args.expiry)


class GrowArgs(NamedTuple):
    key: str
    value: str
    expiry: Expiry
    lease: Optional[str]
    stale: Optional[int]
    conditions: Conditions
    return_value: bool
    max_value_bytes: int  # the grown value must still fit


class GrowCommand(StoreCommand):
    """A verb that adds to the current value; an absent key is set; the expiry is kept."""

    Args = GrowArgs
    change_methods = ("change", "grow")

    def validate(self, params: Params) -> GrowArgs:
        return GrowArgs(
            **self.parse(params),
            conditions=params.conditions,
            return_value=params.return_value,
            max_value_bytes=params.context.max_value_bytes,
        )

    def change(self, current: Optional[Item], now: float, args: GrowArgs) -> Item:
        if current is None:
            return Item(args.value, args.expiry.resolve(now))
        return grown_item(
            self.grow(current.value, args.value),
            args.expiry.resolve(now, current),
            args.max_value_bytes,
        )

    def grown(self, kind: str, args: GrowArgs) -> ServerChange:
        """The change as data: `kind` ("append" or "prepend") of the value, expiry kept."""
        return ServerChange(
            kind,
            args.value,
            expiry=args.expiry,
            keeps_expiry=True,
            max_value_bytes=args.max_value_bytes,
        )

    def grow(self, current: str, value: str) -> str:
        raise NotImplementedError


class Append(GrowCommand):
    """Add the value after the current one (an absent key is set); the expiry is kept."""

    name = "append"

    def grow(self, current: str, value: str) -> str:
        return current + value

    def server_change(self, args: GrowArgs) -> ServerChange:
        return self.grown("append", args)


class Prepend(GrowCommand):
    """Add the value before the current one (an absent key is set); the expiry is kept."""

    name = "prepend"

    def grow(self, current: str, value: str) -> str:
        return value + current

    def server_change(self, args: GrowArgs) -> ServerChange:
        return self.grown("prepend", args)
