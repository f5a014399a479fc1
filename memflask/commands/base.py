"""What every command shares: parameters, validation, results, errors and the run loop.

Nothing here knows HTTP's request object: the web layer turns a request into `Params`
and a `Result` back into a response, and `/batch` does the same with JSON.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar, Mapping, NamedTuple, Optional, Sequence

from ..registry import Registry
from ..store import Change, Item, ItemTooLarge, Store, StoreUnavailable, utf8_len

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


# -- errors --------------------------------------------------------------------------


class CommandError(Exception):
    """A request the cache refuses; carries the HTTP status and a short error code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def result(self) -> Result:
        return Result(self.status, data={"error": self.code, "message": self.message})


class ValidationError(CommandError, ValueError):
    """Bad input: a parameter is missing, malformed or out of range."""


class NotFound(CommandError):
    status = 404
    code = "not_found"


class Exists(CommandError):
    status = 409
    code = "exists"


class PreconditionFailed(CommandError):
    status = 412
    code = "precondition_failed"


class ValueTooLarge(CommandError):
    status = 413
    code = "value_too_large"


class Unavailable(CommandError):
    status = 503
    code = "store_unavailable"


class UnknownVerb(CommandError):
    status = 404
    code = "unknown_verb"


# -- what a command reads and returns --------------------------------------------------


class CommandCounts:
    """Per-verb command counters, safe to bump from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, verb: str) -> None:
        with self._lock:
            self._counts[verb] = self._counts.get(verb, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


class Context(NamedTuple):
    """Per-app settings and state that commands may need besides the store."""

    registry: Registry
    counts: CommandCounts
    max_key_bytes: int = 250
    max_value_bytes: int = 1024 * 1024
    max_batch: int = 1000
    started: float = 0.0  # time.monotonic() at start-up


class Conditions(NamedTuple):
    """HTTP preconditions on an item's version, as parsed entity-tag sets (None: no header)."""

    if_match: Optional[frozenset[str]] = None
    if_none_match: Optional[frozenset[str]] = None

    @classmethod
    def from_headers(cls, if_match: Optional[str], if_none_match: Optional[str]) -> Conditions:
        if if_match is None and if_none_match is None:
            return NO_CONDITIONS  # most requests: nothing to parse
        return cls(
            _parse_entity_tags(if_match, weak_matches=False),
            _parse_entity_tags(if_none_match, weak_matches=True),
        )

    def check(self, current: Optional[Item]) -> None:
        """Raise PreconditionFailed unless a write may go ahead on `current`."""
        if self.if_match is not None and not _matches(self.if_match, current):
            raise PreconditionFailed("If-Match does not match the item's current version")
        if self.if_none_match is not None and _matches(self.if_none_match, current):
            raise PreconditionFailed("If-None-Match matches the item's current version")

    def not_modified(self, item: Item) -> bool:
        """Whether a read may answer 304: the client already holds this version."""
        return self.if_none_match is not None and _matches(self.if_none_match, item)


NO_CONDITIONS = Conditions()


def entity_tag(version: int) -> str:
    """Return the quoted ETag header value for an item version."""
    return f'"{version}"'


def _parse_entity_tags(header: Optional[str], weak_matches: bool) -> Optional[frozenset[str]]:
    if header is None:
        return None
    if header.strip() == "*":
        return frozenset("*")
    return frozenset(tag for weak, tag in _ENTITY_TAG.findall(header) if weak_matches or not weak)


def _matches(tags: frozenset[str], item: Optional[Item]) -> bool:
    return item is not None and ("*" in tags or str(item.version) in tags)


class Expiry(NamedTuple):
    """An expiry as the request gave it: absolute Unix seconds (`at`) or relative (`ttl`)."""

    at: Optional[int] = None
    ttl: Optional[int] = None

    @property
    def given(self) -> bool:
        return self.at is not None or self.ttl is not None

    def resolve(self, now: float, current: Optional[Item] = None) -> Optional[float]:
        """Return the absolute expiry (None: never); with none given, keep `current`'s."""
        if self.at is not None:
            return float(self.at) if self.at else None
        if self.ttl is not None:
            return now + self.ttl if self.ttl else None
        return current.expires_at if current is not None else None


NO_EXPIRY = Expiry()


class Params:
    """A command's parameters (name -> list of strings) plus the request's preconditions."""

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

    def all(self, name: str) -> Sequence[str]:
        return self.values.get(name, ())

    def optional(self, name: str) -> Optional[str]:
        """Return the one value of `name`, or None when absent; refuse it twice."""
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ValidationError(
                f"parameter {name!r} was given more than once", "duplicate_parameter"
            )
        return values[0]

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ValidationError(f"parameter {name!r} is required", "missing_parameter")
        return value

    def key(self, name: str = "key") -> str:
        return check_key(self.required(name), self.context.max_key_bytes)

    def value(self) -> str:
        return check_value(self.required("value"), self.context.max_value_bytes)

    def expiry(self) -> Expiry:
        """Read `expire` (absolute) or `ttl` (relative); empty means not given."""
        expire = self.optional("expire") or None
        ttl = self.optional("ttl") or None
        if expire is not None and ttl is not None:
            raise ValidationError("give either 'expire' or 'ttl', not both", "conflicting_expiry")
        if expire is not None:
            return Expiry(at=parse_int64(expire, "expire", "invalid_expire"))
        if ttl is not None:
            return Expiry(ttl=parse_int64(ttl, "ttl", "invalid_expire"))
        return NO_EXPIRY


def params_from_json(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Turn a JSON object into params: strings as is, integers in base 10, lists as repeats."""
    values: dict[str, list[str]] = {}
    for name, raw in document.items():
        items = raw if isinstance(raw, list) else [raw]
        values[name] = [_json_param(name, item) for item in items]
    return values


def _json_param(name: str, item: Any) -> str:
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"parameter {name!r} is not valid UTF-8 (a lone surrogate)", "invalid_encoding"
            ) from None
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    raise ValidationError(
        f"parameter {name!r} must be a string or an integer, got {type(item).__name__}",
        "invalid_parameter",
    )


def check_key(key: str, max_key_bytes: int) -> str:
    if not key:
        raise ValidationError("the key must not be empty", "invalid_key")
    if utf8_len(key) > max_key_bytes:
        raise ValidationError(f"the key is longer than {max_key_bytes} bytes", "key_too_long")
    return key


def check_value(value: str, max_value_bytes: int) -> str:
    if utf8_len(value) > max_value_bytes:
        raise ValueTooLarge(f"the value is larger than {max_value_bytes} bytes")
    return value


def parse_int64(text: str, what: str, code: str = "not_an_integer") -> int:
    """Parse a plain ASCII base-10 integer in signed 64-bit range, or raise ValidationError."""
    if not _INTEGER.fullmatch(text):
        raise ValidationError(f"{what} must be a base-10 integer, got {_excerpt(text)}", code)
    # Cheap range check first, so a megabyte of digits never reaches int().
    if len(text.lstrip("+-").lstrip("0")) > 19:
        raise ValidationError(f"{what} is outside the signed 64-bit range", code)
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValidationError(f"{what} is outside the signed 64-bit range", code)
    return number


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


class Result(NamedTuple):
    """What a command answers: a status and a text value or JSON data, and the item version."""

    status: int = 204
    value: Optional[str] = None
    data: Any = None
    version: Optional[int] = None


# -- commands --------------------------------------------------------------------------


class Command:
    """One cache verb: `validate` turns params into args, `apply` runs them on the store."""

    name: ClassVar[str] = ""
    # A command that changes data: refused on HEAD, and on cross-site browser requests.
    writes: ClassVar[bool] = False
    # Whether the command reads a JSON body that is not an object (Params.document).
    accepts_document: ClassVar[bool] = False

    def validate(self, params: Params) -> Any:
        raise NotImplementedError

    def apply(self, store: Store, args: Any) -> Result:
        raise NotImplementedError


class WriteArgs(NamedTuple):
    """The arguments every single-key write takes; `value` and `compare` as the verb needs."""

    key: str
    value: Any = None
    expiry: Expiry = NO_EXPIRY
    conditions: Conditions = NO_CONDITIONS
    return_value: bool = False
    compare: Optional[str] = None
    max_value_bytes: int = 0


class WriteCommand(Command):
    """A write to one key: checks the request's preconditions, then applies `change`."""

    writes = True
    needs_value: ClassVar[bool] = True
    takes_expiry: ClassVar[bool] = True
    # A verb that reads as it writes (gat): counts a hit or a miss and answers the value.
    reads: ClassVar[bool] = False

    def validate(self, params: Params) -> WriteArgs:
        return WriteArgs(
            key=params.key(),
            value=params.value() if self.needs_value else None,
            expiry=params.expiry() if self.takes_expiry else NO_EXPIRY,
            conditions=params.conditions,
            return_value=params.return_value,
            max_value_bytes=params.context.max_value_bytes,
        )

    def change(self, current: Optional[Item], now: float, args: WriteArgs) -> Change:
        """Return the change to make to `current`, or raise CommandError to refuse."""
        raise NotImplementedError

    def apply(self, store: Store, args: WriteArgs) -> Result:
        def checked_change(current: Optional[Item], now: float) -> Change:
            args.conditions.check(current)
            return self.change(current, now, args)

        try:
            item = store.update(args.key, checked_change, read=self.reads)
        except ItemTooLarge as error:
            raise ValueTooLarge(f"the item is too large for the cache: {error}") from None
        return written(item, args.return_value or self.reads)


def grown_item(value: str, expires_at: Optional[float], max_value_bytes: int) -> Item:
    """Return an Item of `value`, refusing a value that grew past the limit (append, prepend)."""
    return Item(check_value(value, max_value_bytes), expires_at)


def written(item: Optional[Item], return_value: bool) -> Result:
    """The answer to a write: 204, or 200 with the stored value when the client asked for it."""
    if item is None:
        return Result(204)
    if return_value:
        return Result(200, value=item.value, version=item.version)
    return Result(204, version=item.version)


def run(command: type[Command], store: Store, params: Params) -> Result:
    """Validate and apply one command, turning a refusal into its error result."""
    params.context.counts.add(command.name)
    instance = command()
    try:
        return instance.apply(store, instance.validate(params))
    except CommandError as error:
        return error.result()
    except StoreUnavailable as error:
        return Unavailable(f"the store is unavailable; nothing was done ({error})").result()
