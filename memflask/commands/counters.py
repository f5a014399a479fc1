"""Integer verbs: increment and decrement, strict signed 64-bit, never a silent wrap."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Optional

from ..core.errors import NotAnInteger, Overflow
from ..core.headers import Conditions
from ..store import Item, ServerChange
from .base import WriteCommand
from .params import INT64_MAX, INT64_MIN, Amount, Expiry, ExpiryParameter, Key, parse_int64


class CounterArgs(NamedTuple):
    key: str
    amount: int
    expiry: Expiry
    conditions: Conditions
    return_value: bool


class CounterCommand(WriteCommand):
    """Add `sign * value` to a stored integer; an absent key is set to `value` as given."""

    parameters = (Key(), Amount(), ExpiryParameter())
    refusals = (*WriteCommand.refusals, NotAnInteger, Overflow)
    Args = CounterArgs
    sign: ClassVar[int] = 1

    def change(self, current: Optional[Item], now: float, args: CounterArgs) -> Item:
        if current is None:
            return Item(str(args.amount), args.expiry.resolve(now))
        stored = parse_int64(current.value, "the stored value")
        result = stored + self.sign * args.amount
        if not INT64_MIN <= result <= INT64_MAX:
            raise Overflow(
                f"the result {result} is outside the signed 64-bit range; nothing changed"
            )
        return Item(str(result), args.expiry.resolve(now, current))

    def server_change(self, args: CounterArgs) -> ServerChange:
        return ServerChange(
            "count",
            str(args.amount),  # an absent key is set to the amount as given
            amount=self.sign * args.amount,
            expiry=args.expiry,
            keeps_expiry=True,
        )


class Increment(CounterCommand):
    """Add `value` to the stored integer (absent: set to `value`)."""

    name = "increment"
    sign = 1


class Decrement(CounterCommand):
    """Subtract `value` from the stored integer (absent: set to `value`, as in the original)."""

    name = "decrement"
    sign = -1
