"""Verbs that read: get, mget, ttl."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

from .. import limits
from ..core.errors import AnswerTooLarge, MissingParameter, NotFound
from ..core.headers import Conditions
from ..store import Item, LeaseRead, Store, utf8_len
from .base import Command
from .budget import ASCII_CHAR_MOST, OTHER_CHAR_MOST, string_size
from .params import INT64_MAX, Key, Keys, Params, Seconds
from .result import TEXT, Result, json_content, refused


class GetArgs(NamedTuple):
    key: str
    lease: Optional[int]  # seconds of a lease this reader may take (None: a plain read)
    recache: Optional[int]  # with `lease`: take it on a hit expiring within these seconds
    conditions: Conditions
    answer_room: Optional[int]  # in a /batch, the room left in its answer (Params)


class Get(Command):
    """Read a value (200) with its version as ETag; 304 when the client holds that version.

    With `lease`, a reader that may recompute the value (memcached's meta `mg k N<s>`): a
    miss with no lease held gives this reader one (404 with a `Lease` token to write
    with); a miss while another holds it answers 404 with `Retry-After`; a stale value
    (invalidated, or expired within its `stale` window) answers 200 with `Cache-Status:
    memflask; hit; ttl=<negative>`, and a `Lease` if none is held. With `recache`, a hit
    expiring within that many seconds gives a `Lease` too (memcached's `R` flag).
    """

    name = "get"
    parameters = (
        Key(),
        Seconds(
            "lease",
            "Read as one who may recompute the value: a miss or a stale value gives this "
            "reader a lease for this long, if no one holds it",
            1,
            limits.MAX_LEASE_SECONDS,
        ),
        Seconds(
            "recache",
            "With lease: a hit that expires within this long gives a lease too",
            1,
            limits.MAX_LEASE_SECONDS,
        ),
    )
    refusals = (NotFound,)
    answers = {200: TEXT, 304: None}

    def validate(self, params: Params) -> GetArgs:
        args = GetArgs(
            **self.parse(params), conditions=params.conditions, answer_room=params.answer_room
        )
        if args.recache is not None and args.lease is None:
            raise MissingParameter("recache needs lease: the seconds of the lease to give")
        return args

    def apply(self, store: Store, args: GetArgs) -> Result:
        if args.lease is not None:
            return _leased_answer(store.get_leased(args.key, args.lease, args.recache), args)
        item = _read(store, args.key, args.answer_room)
        if item is None:
            raise NotFound("no such key")
        if args.conditions.not_modified(item):
            return Result(304, version=item.version)
        return Result(200, value=item.value, version=item.version)


def _leased_answer(read: LeaseRead, args: GetArgs) -> Result:
    """A lease read's answer: the value or a 404, with its Lease, Retry-After and
    Cache-Status headers."""
    headers: tuple[tuple[str, str], ...] = ()
    if read.token is not None:
        headers += (("Lease", read.token),)
    if read.lease_left is not None:
        headers += (("Retry-After", str(max(1, math.ceil(read.lease_left)))),)
    item = read.item
    if item is None:
        return refused(NotFound("no such key"))._replace(headers=headers)
    if read.stale_for is not None:
        # RFC 9211: a negative ttl is how long the answer has been stale.
        stale_seconds = max(1, math.ceil(read.stale_for))
        headers += (("Cache-Status", f"memflask; hit; ttl=-{stale_seconds}"),)
    if args.conditions.not_modified(item):
        return Result(304, version=item.version, headers=headers)
    return Result(200, value=item.value, version=item.version, headers=headers)


def _read(store: Store, key: str, answer_room: Optional[int]) -> Optional[Item]:
    """The key's item. In a /batch on a store that bounds a read by bytes (Redis), its value
    is sent only if it may fit the room left in the batch's answer: past it, the key is
    read (a hit) but its value stays in Redis, and its result is left out (413), as the
    batch leaves out any result that does not fit. (A /batch of 1,000 gets of a 1 MiB
    value pulled 1 GB from Redis for a 16 MiB answer.)"""
    get_many_within = getattr(store, "get_many_within", None)
    if answer_room is None or get_many_within is None:
        return store.get(key)
    # It counts the key's UTF-8 bytes, the value's and 6: the value's against the room. A
    # value's UTF-8 bytes are never more than its JSON.
    items = get_many_within([key], answer_room + utf8_len(key) + 6)
    if items is None:
        raise AnswerTooLarge(
            "left out: the value would pass the room left in the batch's answer "
            "(MAX_ANSWER_BYTES); the key was read, not sent: read it on its own or in a "
            "smaller batch"
        )
    return items.get(key)


class KeysArgs(NamedTuple):
    keys: list[str]
    max_answer_bytes: int
    max_value_bytes: int


class MultiGet(Command):
    """Read many keys: a JSON object of the hits, /mget?key=a&key=b -> {"a": "1"}.

    The answer is at most MAX_ANSWER_BYTES (default 16 MiB) of JSON: an /mget whose hits
    would pass it is refused whole, 413 `answer_too_large` (the keys read are counted as
    hits and misses, nothing is changed); ask for fewer keys per request. No more than
    about MAX_ANSWER_BYTES of values is held meanwhile: the memory store reads a few keys
    at a time; Redis's read script sums the hits' sizes and sends their values only if
    they may fit (RedisStore.get_many_within), one round trip for the whole /mget.
    """

    name = "mget"
    parameters = (Keys(),)
    refusals = (AnswerTooLarge,)
    answers = {200: json_content({"type": "object", "additionalProperties": {"type": "string"}})}
    Args = KeysArgs

    def validate(self, params: Params) -> KeysArgs:
        return KeysArgs(
            **self.parse(params),
            max_answer_bytes=params.answer_bytes(),
            max_value_bytes=params.context.max_value_bytes,
        )

    def apply(self, store: Store, args: KeysArgs) -> Result:
        keys, limit = args.keys, args.max_answer_bytes
        room = limit - 3  # the braces and a newline; each hit takes `"key":"value",`
        found: dict[str, str] = {}
        # A store that bounds a read by bytes (Redis) reads every key in one call, its
        # values sent only if they may fit; the others a few keys at a time.
        get_many_within = getattr(store, "get_many_within", None)
        if get_many_within is not None:
            items = get_many_within(keys, room)
            if items is None:
                raise _too_large(limit)
            for key, item in items.items():
                room -= _hit_size(key, item, room, limit)
                found[key] = item.value
            return Result(200, data=found)
        # Keys per store call: values of at most MAX_VALUE_BYTES each, about the room.
        step = max(1, limit // args.max_value_bytes)
        for start in range(0, len(keys), step):
            items = store.get_many(keys[start : start + step])
            for key, item in items.items():
                if key not in found:
                    room -= _hit_size(key, item, room, limit)
                    found[key] = item.value
        return Result(200, data=found)


def _hit_size(key: str, item: Item, room: int, limit: int) -> int:
    """The JSON bytes a hit takes in the answer (`"key":"value",`), or a bound of them;
    refuse the /mget if they pass `room`."""
    value = item.value
    # Inline bounds (budget.string_bounds): most hits are small, and charged their most.
    most = (
        (ASCII_CHAR_MOST if key.isascii() else OTHER_CHAR_MOST) * len(key)
        + (ASCII_CHAR_MOST if value.isascii() else OTHER_CHAR_MOST) * len(value)
        + 6
    )
    if most <= SMALL_HIT_BYTES and most <= room:
        return most
    size = len(key) + len(value) + 6  # the least
    if size <= room:
        size = string_size(key) + string_size(value) + 2
    if size > room:
        raise _too_large(limit)
    return size


def _too_large(limit: int) -> AnswerTooLarge:
    return AnswerTooLarge(
        f"the hits would pass MAX_ANSWER_BYTES ({limit} bytes) of JSON; "
        "ask for fewer keys per /mget"
    )


# A hit this small at most is charged its most, as a bound (see batch.SMALL_RESULT_BYTES).
SMALL_HIT_BYTES = 1024


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
