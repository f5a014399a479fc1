"""Integer verbs: increment and decrement, strict signed 64-bit, never a silent wrap."""

from __future__ import annotations

from typing import ClassVar, Optional

from ..registry import default_registry
from ..store import Item
from .base import INT64_MAX, INT64_MIN, CommandError, Params, WriteArgs, WriteCommand, parse_int64


class Overflow(CommandError):
    status = 400
    code = "overflow"


class CounterCommand(WriteCommand):
    """Add `sign * value` to a stored integer; an absent key is set to `value` as given."""

    sign: ClassVar[int] = 1

    def validate(self, params: Params) -> WriteArgs:
        args = super().validate(params)
        return args._replace(value=parse_int64(args.value, "the amount 'value'"))

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Item:
        if current is None:
            return Item(str(args.value), args.expiry.resolve(now))
        stored = parse_int64(current.value, "the stored value")
        result = stored + self.sign * args.value
        if not INT64_MIN <= result <= INT64_MAX:
            raise Overflow(
                f"the result {result} is outside the signed 64-bit range; nothing changed"
            )
        return Item(str(result), args.expiry.resolve(now, current))


@default_registry.register
class Increment(CounterCommand):
    """Add `value` to the stored integer."""

    name = "increment"
    sign = 1


@default_registry.register
class Decrement(CounterCommand):
    """Subtract `value` from the stored integer; absent: set to `value`, as in the original."""

    name = "decrement"
    sign = -1
