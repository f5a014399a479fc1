"""Verbs on a key's existence and expiry: delete, touch, gat, flush."""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..errors import NotFound
from ..headers import Conditions
from ..params import Expiry, ExpiryParameter, Key, Params
from ..store import DELETE, Delete, Item, Store
from .base import TEXT, Command, Result, WriteCommand


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


class GetAndTouch(Touch):
    """Touch the key and answer its value (200), counted as a read like memcached's gat."""

    name = "gat"
    answers = {200: TEXT}
    reads = True


class Flush(Command):
    """Remove every key."""

    name = "flush"
    writes = True
    answers = {204: None}

    def validate(self, params: Params) -> None:
        return None

    def apply(self, store: Store, args: None) -> Result:
        store.flush()
        return Result(204)
