"""The command base classes: `Command`, and `WriteCommand` for a write to one key.

A command declares its parameters (objects from memflask.commands.params), the refusals it
may answer (classes from memflask.core.errors) and its successful answers; the validation,
the OpenAPI document and the test tables are all derived from that one description.
Nothing here knows HTTP: the pipeline turns a request into `Params` and a `Result`
back into a response, and `/batch` does the same with JSON.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, ClassVar, Optional

from ..core.errors import OutOfScope, PreconditionFailed, Refusal, ValueTooLarge
from ..core.tokens import Grant
from ..store import Change, Item, ItemTooLarge, LeaseNotHeld, ServerChange, Store
from .params import Key, Keys, Parameter, Params, check_value
from .result import TEXT, Result, written


class Command:
    """One cache verb: `validate` turns params into typed args, `apply` runs them on the store.

    The class describes itself: its docstring's first line is the verb's summary,
    `parameters` what it reads, `refusals` the errors of its own, `answers` its
    successful statuses and their content.
    """

    name: ClassVar[str] = ""
    # A command that changes data: refused on HEAD, and on cross-site browser requests.
    writes: ClassVar[bool] = False
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    refusals: ClassVar[tuple[type[Refusal], ...]] = ()
    answers: ClassVar[dict[int, Any]] = {200: {"*/*": {}}, 204: None}
    # The schema of a JSON body that is not an object of parameters (a /batch list), for
    # a verb that reads one (Params.document); such a verb is described as POST only.
    document_schema: ClassVar[Optional[dict[str, Any]]] = None
    # The type of the arguments `validate` returns: one field per parameter.
    Args: ClassVar[type] = SimpleNamespace

    @classmethod
    def accepts_document(cls) -> bool:
        return cls.document_schema is not None

    def parse(self, params: Params) -> dict[str, Any]:
        """Every declared parameter's value, by its field name."""
        values = params.values
        return {
            parameter.field: (
                None
                if parameter.none_when_absent and parameter.name not in values
                else parameter.parse(params)
            )
            for parameter in self.parameters
        }

    def validate(self, params: Params) -> Any:
        return self.Args(**self.parse(params))

    def apply(self, store: Store, args: Any) -> Result:
        raise NotImplementedError

    def authorize(self, args: Any, grant: Grant) -> None:
        """Refuse (403 `out_of_scope`) what a scoped token may not do: a write with a read
        token, a key outside its prefix. A verb that names no key (stats, a plugin's
        without one) is for admin tokens; verbs on many keys or a prefix say their own."""
        if self.writes and not grant.writes:
            raise OutOfScope(f"/{self.name} changes data: token {grant.name!r} may only read")
        keys = self.keys_of(args)
        if keys is None:
            raise OutOfScope(f"/{self.name} is for admin tokens (token {grant.name!r} is not)")
        for key in keys:
            require_prefix(grant, key, "key")

    def keys_of(self, args: Any) -> Optional[list[str]]:
        """The keys the arguments name (its Key and Keys parameters); None: it names none."""
        keys: Optional[list[str]] = None
        for parameter in self.parameters:
            if isinstance(parameter, (Key, Keys)):
                value = getattr(args, parameter.field)
                keys = (keys or []) + (value if isinstance(value, list) else [value])
        return keys

    def examines(self, store: Store, size: int, args: Any) -> int:
        """At most how many keys `apply` examines, `size` being store.scan_size(): a /batch's
        work budget (MAX_SCAN_KEYS). Only verbs that scan the keyspace examine any."""
        return 0

    @classmethod
    def scans(cls) -> bool:
        """Whether the verb scans the keyspace (counts against a /batch's work budget)."""
        return cls.examines is not Command.examines


class WriteCommand(Command):
    """A write to one key: checks the request's preconditions, then applies `change`.

    Its Args carry `key`, the verb's own parameters, `conditions` and `return_value`;
    a verb that fills leases also `lease` and `stale` (storage.LEASE_PARAMETERS).
    """

    writes = True
    refusals = (PreconditionFailed, ValueTooLarge)
    answers = {204: None, 200: TEXT}  # 200 with the value under Prefer: return=representation
    # A verb that reads as it writes (gat): counts a hit or a miss and answers the value.
    reads: ClassVar[bool] = False
    # The methods `change` is made of, which `server_change` must describe as they are.
    change_methods: ClassVar[tuple[str, ...]] = ("change",)

    def validate(self, params: Params) -> Any:
        return self.Args(
            **self.parse(params), conditions=params.conditions, return_value=params.return_value
        )

    def change(self, current: Optional[Item], now: float, args: Any) -> Change:
        """Return the change to make to `current`, or raise a Refusal to refuse."""
        raise NotImplementedError

    def server_change(self, args: Any) -> Optional[ServerChange]:
        """The same change as `change`, as data a backend can run server-side (None: none).

        A class that defines `server_change` must define the methods `change` depends on
        (`change_methods`) too, or inherit them all from one class: a subclass that
        overrides one of them alone is not described by it, and runs in Python.
        """
        return None

    def conditioned_server_change(self, args: Any) -> Optional[ServerChange]:
        """`server_change` with the request's conditions, if it describes `change`."""
        if not _describes_its_change(type(self)):
            return None
        description = self.server_change(args)
        if description is None:
            return None
        return description._replace(
            if_match=args.conditions.if_match, if_none_match=args.conditions.if_none_match
        )

    def apply(self, store: Store, args: Any) -> Result:
        def checked_change(current: Optional[Item], now: float) -> Change:
            args.conditions.check(current)
            return self.change(current, now, args)

        server_change = self.conditioned_server_change(args)
        lease, stale = getattr(args, "lease", None), getattr(args, "stale", None)
        try:
            if lease is None and stale is None:
                item = store.write(args.key, checked_change, server_change, read=self.reads)
            else:
                item = store.write(
                    args.key,
                    checked_change,
                    server_change,
                    read=self.reads,
                    lease=lease or "",
                    stale=stale,
                )
        except ItemTooLarge as error:
            raise ValueTooLarge(f"the item is too large for the cache: {error}") from None
        except LeaseNotHeld as error:
            raise PreconditionFailed(str(error)) from None
        return written(item, args.return_value or self.reads)


def require_prefix(grant: Grant, text: str, what: str) -> None:
    """Refuse a key or prefix outside the token's prefix."""
    if not text.startswith(grant.prefix):
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise OutOfScope(
            f"{what} {shown!r} is outside token {grant.name!r}'s prefix {grant.prefix!r}"
        )


@functools.cache  # per class, for good: a class's methods stay put
def _describes_its_change(command: type[WriteCommand]) -> bool:
    """Whether the class's `server_change` was written for its `change`: defined in the same
    class as each of `change_methods` or below it, so a plugin verb that overrides only
    `change` (or `grow`) runs it in Python."""
    mro = command.__mro__

    def definer(method: str) -> int:
        return next(index for index, klass in enumerate(mro) if method in vars(klass))

    describer = definer("server_change")
    return mro[describer] is not WriteCommand and all(
        describer <= definer(method) for method in command.change_methods
    )


def grown_item(value: str, expires_at: Optional[float], max_value_bytes: int) -> Item:
    """Return an Item of `value`, refusing a value that grew past the limit (append, prepend)."""
    return Item(check_value(value, max_value_bytes), expires_at)
