"""A request's parameters, and the parameter objects commands declare.

A command lists its parameters as objects (as click commands do): each one reads its
value from `Params`, checks it, and describes itself for the OpenAPI document, so a
verb's parameters are written down once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, NamedTuple, Optional, Sequence

from .. import limits
from ..core.errors import (
    ConflictingExpiry,
    DuplicateParameter,
    InvalidDuration,
    InvalidExpire,
    InvalidKey,
    InvalidLease,
    InvalidLimit,
    KeyTooLong,
    MissingParameter,
    NotAnInteger,
    Refusal,
    TooManyKeys,
    ValidationError,
    ValueTooLarge,
)
from ..core.headers import NO_CONDITIONS, Conditions
from ..store import TtlDeadline, utf8_len

if TYPE_CHECKING:
    from ..core.tokens import Grant
    from ..store import Item
    from .base import Context

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")


class Params:
    """A request's parameters (name -> list of strings), preconditions and preferences,
    with the app's context (limits, registry) that checking them needs."""

    def __init__(
        self,
        values: Mapping[str, Sequence[str]],
        context: Context,
        conditions: Conditions = NO_CONDITIONS,
        return_value: bool = False,
        document: Any = None,
    ):
        self.values = values
        self.context = context
        self.conditions = conditions
        self.return_value = return_value
        # A JSON body that is not an object (a /batch list); only verbs that accept one see it.
        self.document = document
        # What the request's token may do (None: anything; see Command.authorize).
        self.grant: Optional[Grant] = None
        # In a /batch: the room left in its answer, set as each command runs (a request of
        # its own: None). The verbs that bound what they read (/mget, /keys, get on Redis)
        # keep within it.
        self.answer_room: Optional[int] = None

    def answer_bytes(self) -> int:
        """The most bytes this command's answer may take: the room left in a /batch's
        answer, or MAX_ANSWER_BYTES."""
        room = self.answer_room
        return self.context.max_answer_bytes if room is None else room

    def all(self, name: str) -> Sequence[str]:
        return self.values.get(name, ())

    def optional(self, name: str) -> Optional[str]:
        """Return the one value of `name`, or None when absent; refuse it twice."""
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise DuplicateParameter(f"parameter {name!r} was given more than once")
        return values[0]

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise MissingParameter(f"parameter {name!r} is required")
        return value


# -- parameter objects ---------------------------------------------------------------------


class Parameter:
    """One named request parameter: reads, checks and describes itself.

    `field` is the attribute of the command's arguments it fills; `example` is a valid
    value, for the tests and the document.
    """

    schema: ClassVar[dict[str, Any]] = {"type": "string"}
    # Refusals this parameter itself may answer (beyond a missing or repeated one).
    refusals: ClassVar[tuple[type[Refusal], ...]] = ()

    def __init__(
        self,
        name: str,
        description: str,
        *,
        field: Optional[str] = None,
        required: bool = True,
        example: str = "1",
    ):
        self.name = name
        self.field = field or name
        self.description = description
        self.required = required
        self.example = example
        # Absent, it is None without a call to parse (optional ones on the hot paths).
        self.none_when_absent = not required and type(self).parse is Parameter.parse

    def parse(self, params: Params) -> Any:
        text = params.required(self.name) if self.required else params.optional(self.name)
        return None if text is None else self.convert(text, params.context)

    def convert(self, text: str, context: Context) -> Any:
        """Turn the parameter's text into its value, or raise a ValidationError."""
        return text

    def names(self) -> list[str]:
        """The wire names this parameter reads."""
        return [self.name]

    def examples(self) -> dict[str, str]:
        """Valid wire values of this parameter, by name (for tests and clients)."""
        return {self.name: self.example}

    def openapi(self) -> list[dict[str, Any]]:
        """OpenAPI parameter objects, one per wire name."""
        return [
            {
                "name": self.name,
                "required": self.required,
                "schema": self.schema,
                "description": self.description,
            }
        ]


class Key(Parameter):
    refusals = (InvalidKey, KeyTooLong)

    def __init__(
        self,
        description: str = f"The key: 1 to MAX_KEY_BYTES ({limits.MAX_KEY_BYTES}) UTF-8 bytes.",
    ):
        super().__init__("key", description, example="k")

    def convert(self, text: str, context: Context) -> str:
        return check_key(text, context.max_key_bytes)


class Keys(Parameter):
    """`key` given once or more (up to MAX_BATCH times)."""

    schema = {"type": "string"}
    refusals = (InvalidKey, KeyTooLong, TooManyKeys)

    def __init__(self) -> None:
        super().__init__("key", "A key; repeat it for each key (up to MAX_BATCH).", field="keys")

    def parse(self, params: Params) -> list[str]:
        keys = params.all(self.name)
        if not keys:
            raise MissingParameter("give at least one 'key'")
        limit = params.context.max_batch
        if len(keys) > limit:
            raise TooManyKeys(f"at most {limit} keys per request")
        return [check_key(key, params.context.max_key_bytes) for key in keys]


class Value(Parameter):
    refusals = (ValueTooLarge,)

    def __init__(
        self, description: str = "The value, up to MAX_VALUE_BYTES (1 MiB) of UTF-8."
    ) -> None:
        super().__init__("value", description)

    def convert(self, text: str, context: Context) -> str:
        return check_value(text, context.max_value_bytes)


class Amount(Parameter):
    """A signed 64-bit integer, sent as `value` as in the original."""

    schema = {"type": "string", "pattern": "^[+-]?[0-9]+$"}
    refusals = (NotAnInteger,)

    def __init__(self) -> None:
        super().__init__("value", "A signed 64-bit base-10 integer.", field="amount")

    def convert(self, text: str, context: Context) -> int:
        return parse_int64(text, "the amount 'value'")


class Limit(Parameter):
    """How many keys a page may hold: 1 to MAX_BATCH."""

    schema = {"type": "string", "pattern": "^[0-9]+$"}
    refusals = (InvalidLimit,)

    def __init__(self, default: int = 100) -> None:
        super().__init__(
            "limit", f"Keys per page, 1 to MAX_BATCH (default {default}).", required=False
        )
        self.default = default

    def parse(self, params: Params) -> int:
        text = params.optional(self.name)
        if text is None or text == "":
            return min(self.default, params.context.max_batch)
        limit = parse_int64(text, "limit", InvalidLimit)
        if not 1 <= limit <= params.context.max_batch:
            raise InvalidLimit(f"limit must be from 1 to {params.context.max_batch}, got {limit}")
        return limit


class Seconds(Parameter):
    """An optional whole number of seconds, from `least` to `most`."""

    schema = {"type": "string", "pattern": "^[0-9]+$"}
    refusals = (InvalidDuration,)

    def __init__(self, name: str, description: str, least: int, most: int) -> None:
        super().__init__(
            name, f"{description} ({least} to {most} seconds).", required=False, example="30"
        )
        self.least = least
        self.most = most

    def convert(self, text: str, context: Context) -> int:
        seconds = parse_int64(text, self.name, InvalidDuration)
        if not self.least <= seconds <= self.most:
            raise InvalidDuration(
                f"{self.name} must be from {self.least} to {self.most} seconds, got {seconds}"
            )
        return seconds


# A lease token as Store.get_leased makes them (secrets.token_urlsafe), with room to spare.
_LEASE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LeaseToken(Parameter):
    """A write's `lease`: the token a /get?lease= gave, so the write applies only while that
    lease is current."""

    schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
    refusals = (InvalidLease,)

    def __init__(self) -> None:
        super().__init__(
            "lease",
            "The token a /get with `lease` answered in its Lease header: the write applies "
            "only while that lease is current (412 otherwise), and ends it.",
            required=False,
            example="",
        )

    def convert(self, text: str, context: Context) -> str:
        if not _LEASE_TOKEN.fullmatch(text):
            raise InvalidLease(
                f"lease must be a token a /get?lease= answered, got {_excerpt(text)}"
            )
        return text

    def examples(self) -> dict[str, str]:
        return {}  # a valid token is one a lease read gave: none is valid in advance


class Expiry(NamedTuple):
    """An expiry as the request gave it: absolute Unix seconds (`at`) or relative (`ttl`)."""

    at: Optional[int] = None
    ttl: Optional[int] = None

    @property
    def given(self) -> bool:
        return self.at is not None or self.ttl is not None

    def resolve(self, now: float, current: Optional[Item] = None) -> Optional[float]:
        """Return the absolute expiry (None: never); with none given, keep `current`'s.

        A ttl's is a TtlDeadline: the Item made with it expires by the monotonic clock,
        and so does one made with a kept TtlItem's expiry.
        """
        if self.at is not None:
            return float(self.at) if self.at else None
        if self.ttl is not None:
            return TtlDeadline(now + self.ttl) if self.ttl else None
        return current.expires_at if current is not None else None


NO_EXPIRY = Expiry()
_EXPIRY_SCHEMA = {"type": "string", "pattern": "^[+-]?[0-9]*$"}


class ExpiryParameter(Parameter):
    """`expire` (absolute Unix seconds) or `ttl` (seconds from now); never both.

    Empty means not given. `required` means one of the two must be given.
    """

    refusals = (InvalidExpire, ConflictingExpiry)

    def __init__(self, *, required: bool = False) -> None:
        super().__init__("expire", "", field="expiry", required=required, example="10")

    def parse(self, params: Params) -> Expiry:
        expire = params.optional("expire") or None
        ttl = params.optional("ttl") or None
        if expire is not None and ttl is not None:
            raise ConflictingExpiry("give either 'expire' or 'ttl', not both")
        if expire is not None:
            return Expiry(at=parse_int64(expire, "expire", InvalidExpire))
        if ttl is not None:
            return Expiry(ttl=parse_int64(ttl, "ttl", InvalidExpire))
        if self.required:
            raise MissingParameter("give 'expire' or 'ttl' (0 for no expiry)")
        return NO_EXPIRY

    def names(self) -> list[str]:
        return ["expire", "ttl"]

    def examples(self) -> dict[str, str]:
        return {"ttl": self.example}

    def openapi(self) -> list[dict[str, Any]]:
        either = " One of expire and ttl is required." if self.required else ""
        return [
            {
                "name": "expire",
                "required": False,
                "schema": _EXPIRY_SCHEMA,
                "description": "Absolute Unix seconds; empty or 0: never; at or before now: "
                "already expired." + either,
            },
            {
                "name": "ttl",
                "required": False,
                "schema": _EXPIRY_SCHEMA,
                "description": "Seconds from now; 0: never; negative: already expired. "
                "Not with expire." + either,
            },
        ]


# -- checks ---------------------------------------------------------------------------------


def check_key(key: str, max_key_bytes: int) -> str:
    if not key:
        raise InvalidKey("the key must not be empty")
    if utf8_len(key) > max_key_bytes:
        raise KeyTooLong(f"the key is longer than {max_key_bytes} bytes")
    return key


def check_value(value: str, max_value_bytes: int) -> str:
    if utf8_len(value) > max_value_bytes:
        raise ValueTooLarge(f"the value is larger than {max_value_bytes} bytes")
    return value


def parse_int64(text: str, what: str, refusal: type[ValidationError] = NotAnInteger) -> int:
    """Parse a plain ASCII base-10 integer in signed 64-bit range, or raise `refusal`."""
    if not _INTEGER.fullmatch(text):
        raise refusal(f"{what} must be a base-10 integer, got {_excerpt(text)}")
    # Cheap range check first, so a megabyte of digits never reaches int().
    if len(text.lstrip("+-").lstrip("0")) > 19:
        raise refusal(f"{what} is outside the signed 64-bit range")
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise refusal(f"{what} is outside the signed 64-bit range")
    return number


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
