"""Verbs that read: get, mget, ttl."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..errors import NotFound
from ..headers import Conditions
from ..params import INT64_MAX, Key, Keys, Params
from ..store import Store
from .base import TEXT, Command, Result, json_content


class GetArgs(NamedTuple):
    key: str
    conditions: Conditions


class Get(Command):
    """Read a value (200) with its version as ETag; 304 when the client holds that version."""

    name = "get"
    parameters = (Key(),)
    refusals = (NotFound,)
    answers = {200: TEXT, 304: None}

    def validate(self, params: Params) -> GetArgs:
        return GetArgs(**self.parse(params), conditions=params.conditions)

    def apply(self, store: Store, args: GetArgs) -> Result:
        item = store.get(args.key)
        if item is None:
            raise NotFound("no such key")
        if args.conditions.not_modified(item):
            return Result(304, version=item.version)
        return Result(200, value=item.value, version=item.version)


class KeysArgs(NamedTuple):
    keys: list[str]


class MultiGet(Command):
    """Read many keys: a JSON object of the hits, /mget?key=a&key=b -> {"a": "1"}."""

    name = "mget"
    parameters = (Keys(),)
    answers = {200: json_content({"type": "object", "additionalProperties": {"type": "string"}})}
    Args = KeysArgs

    def apply(self, store: Store, args: KeysArgs) -> Result:
        items = store.get_many(args.keys)
        return Result(200, data={key: item.value for key, item in items.items()})


class KeyArgs(NamedTuple):
    key: str


class TimeToLive(Command):
    """Answer the whole seconds left before the key expires (null: never), as {"key", "ttl"}."""

    name = "ttl"
    parameters = (Key(),)
    refusals = (NotFound,)
    answers = {
        200: json_content(
            {
                "type": "object",
                "required": ["key", "ttl"],
                "properties": {
                    "key": {"type": "string"},
                    "ttl": {"type": ["integer", "null"], "minimum": 0},
                },
            }
        )
    }
    Args = KeyArgs

    def apply(self, store: Store, args: KeyArgs) -> Result:
        item = store.peek(args.key)
        if item is None:
            raise NotFound("no such key")
        ttl = None
        if item.expires_at is not None:
            # Clamped: a ttl of 2**63 - 1 seconds, as a float, rounds up past int64.
            ttl = min(INT64_MAX, max(0, math.ceil(item.expires_at - store.clock())))
        return Result(200, data={"key": args.key, "ttl": ttl})
