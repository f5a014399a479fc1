"""Verbs on a key's existence and expiry: delete, touch, gat, flush."""

from __future__ import annotations

from typing import Optional

from ..registry import default_registry
from ..store import DELETE, Delete, Item, Store
from .base import Command, NotFound, Params, Result, ValidationError, WriteArgs, WriteCommand


@default_registry.register
class DeleteKey(WriteCommand):
    """Remove the key; 204 whether or not it was there."""

    name = "delete"
    needs_value = False
    takes_expiry = False

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Delete:
        return DELETE


@default_registry.register
class Touch(WriteCommand):
    """Give an existing key a new expiry (`expire` or `ttl`, 0: never); 404 if absent."""

    name = "touch"
    needs_value = False

    def validate(self, params: Params) -> WriteArgs:
        args = super().validate(params)
        if not args.expiry.given:
            raise ValidationError(
                f"{self.name} needs 'expire' or 'ttl' (0 for no expiry)", "missing_parameter"
            )
        return args

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is None:
            raise NotFound("no such key")
        return Item(current.value, args.expiry.resolve(now))


@default_registry.register
class GetAndTouch(Touch):
    """Touch the key and answer its value (200), counted as a read like memcached's gat."""

    name = "gat"
    reads = True


@default_registry.register
class Flush(Command):
    """Remove every key."""

    name = "flush"
    writes = True

    def validate(self, params: Params) -> None:
        return None

    def apply(self, store: Store, args: None) -> Result:
        store.flush()
        return Result(204)
