"""Verbs that store a value: set, add, replace, checkandset, append, prepend."""

from __future__ import annotations

from typing import Optional

from ..registry import default_registry
from ..store import Item
from .base import CommandError, Exists, NotFound, Params, WriteArgs, WriteCommand, grown_item


@default_registry.register
class Set(WriteCommand):
    """Store a value, replacing any item and its expiry (no expiry given: never expires)."""

    name = "set"

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        return Item(args.value, args.expiry.resolve(now))


@default_registry.register
class Add(WriteCommand):
    """Store a value only if the key is absent (409 otherwise), as memcached's add."""

    name = "add"

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is not None:
            raise Exists("the key already exists")
        return Item(args.value, args.expiry.resolve(now))


@default_registry.register
class Replace(WriteCommand):
    """Store a value only if the key is present (404 otherwise), as memcached's replace."""

    name = "replace"

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is None:
            raise NotFound("no such key")
        return Item(args.value, args.expiry.resolve(now))


class CompareMismatch(CommandError):
    status = 400
    code = "compare_mismatch"


@default_registry.register
class CheckAndSet(WriteCommand):
    """Store a value if the current one equals `compare`, or if the key is absent."""

    name = "checkandset"

    def validate(self, params: Params) -> WriteArgs:
        return super().validate(params)._replace(compare=params.required("compare"))

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is not None and current.value != args.compare:
            raise CompareMismatch("the current value does not equal 'compare'; nothing changed")
        return Item(args.value, args.expiry.resolve(now))


@default_registry.register
class Append(WriteCommand):
    """Add the value after the current one (an absent key is set); the expiry is kept."""

    name = "append"

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is None:
            return Item(args.value, args.expiry.resolve(now))
        return grown_item(
            current.value + args.value, args.expiry.resolve(now, current), args.max_value_bytes
        )


@default_registry.register
class Prepend(WriteCommand):
    """Add the value before the current one (an absent key is set); the expiry is kept."""

    name = "prepend"

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is None:
            return Item(args.value, args.expiry.resolve(now))
        return grown_item(
            args.value + current.value, args.expiry.resolve(now, current), args.max_value_bytes
        )
