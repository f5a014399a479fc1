"""Verbs that read: get, mget, ttl."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..registry import default_registry
from ..store import Store
from .base import Command, Conditions, NotFound, Params, Result, ValidationError, check_key


class ReadArgs(NamedTuple):
    key: str
    conditions: Conditions


@default_registry.register
class Get(Command):
    """Answer the value (200) with its version as ETag; 304 when the client holds that version."""

    name = "get"

    def validate(self, params: Params) -> ReadArgs:
        return ReadArgs(params.key(), params.conditions)

    def apply(self, store: Store, args: ReadArgs) -> Result:
        item = store.get(args.key)
        if item is None:
            raise NotFound("no such key")
        if args.conditions.not_modified(item):
            return Result(304, version=item.version)
        return Result(200, value=item.value, version=item.version)


@default_registry.register
class MultiGet(Command):
    """Answer a JSON object of the keys that hit: /mget?key=a&key=b -> {"a": "1"}."""

    name = "mget"

    def validate(self, params: Params) -> list[str]:
        keys = params.all("key")
        if not keys:
            raise ValidationError("give at least one 'key'", "missing_parameter")
        limit = params.context.max_batch
        if len(keys) > limit:
            raise ValidationError(f"at most {limit} keys per mget", "too_many_keys")
        return [check_key(key, params.context.max_key_bytes) for key in keys]

    def apply(self, store: Store, keys: list[str]) -> Result:
        items = store.get_many(keys)
        return Result(200, data={key: item.value for key, item in items.items()})


@default_registry.register
class TimeToLive(Command):
    """Answer the whole seconds left before the key expires (null: never), as {"key", "ttl"}."""

    name = "ttl"

    def validate(self, params: Params) -> str:
        return params.key()

    def apply(self, store: Store, key: str) -> Result:
        item = store.peek(key)
        if item is None:
            raise NotFound("no such key")
        ttl = None
        if item.expires_at is not None:
            ttl = max(0, math.ceil(item.expires_at - store.clock()))
        return Result(200, data={"key": key, "ttl": ttl})
