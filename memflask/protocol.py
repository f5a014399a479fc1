"""What both clients (memflask.client's Client, memflask.aio's AsyncClient) share: the
verbs, described once (`Verbs`: each method builds a `Call`, which the sync client sends
and the async one awaits, as redis-py's command mixins), the request's encoding, and the
answer's checks and typed errors. Imports no HTTP library."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Union
from urllib.parse import urlencode

from .limits import MIB

Value = Union[str, int]

# The largest answer a client reads by default. A server with its default settings
# answers at most MAX_VALUE_BYTES (1 MiB) for /get and MAX_ANSWER_BYTES (16 MiB) for
# /mget, /batch and /keys: 64 MiB leaves room for a server whose limits were raised a
# little (raise this with them), and only a broken or hostile server meets it.
DEFAULT_MAX_ANSWER_BYTES = 64 * MIB


class MemflaskError(Exception):
    """The server refused a request; `status` and `code` say how (see the README's table)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class MemflaskValidationError(MemflaskError):
    """400: bad input (a key, value, expiry or integer the server refuses)."""


class MemflaskAuthenticationError(MemflaskError):
    """401: the server needs a token, or another one."""


class MemflaskForbiddenError(MemflaskError):
    """403: this Host or Origin may not use the server."""


class MemflaskPreconditionFailed(MemflaskError):
    """412: the item changed since the ETag the request named."""


class MemflaskValueTooLarge(MemflaskError):
    """413: the value (or the request) is over the server's limit."""


class MemflaskServerError(MemflaskError):
    """5xx, or an answer the client cannot read."""


class MemflaskConnectionError(MemflaskError):
    """No usable answer: the server is down, unreachable, too slow, or its answer is cut."""


class MemflaskTimeout(MemflaskConnectionError):
    """No complete answer before the call's deadline (`timeout` seconds)."""


class MemflaskAnswerTooLarge(MemflaskError):
    """The answer is over the client's `max_answer_bytes`: refused, not read whole."""


_ERRORS = {
    400: MemflaskValidationError,
    401: MemflaskAuthenticationError,
    403: MemflaskForbiddenError,
    412: MemflaskPreconditionFailed,
    413: MemflaskValueTooLarge,
}


Fields = Union[Mapping[str, Value], list[tuple[str, Value]], None]


class Call(NamedTuple):
    """One command to send, and how its answer becomes the method's result. `verb` None:
    nothing to send (an empty get_many), `result(0, b"")` is the result."""

    verb: Optional[str]
    result: Callable[[int, bytes], Any]
    fields: Fields = None
    json_body: Optional[list] = None
    allowed: tuple[int, ...] = ()  # statuses answered, not raised
    prefer_value: bool = False  # `Prefer: return=representation`: the new value back
    if_present: bool = False  # `If-Match: *`: the write applies only to a key that exists

    def options(self) -> dict[str, Any]:
        """The keyword arguments of a client's `_call` (its wire method) for this command."""
        return {
            "json_body": self.json_body,
            "allowed": self.allowed,
            "prefer_value": self.prefer_value,
            "if_present": self.if_present,
        }


class Verbs:
    """The verbs, described once for both clients (redis-py's pattern): each method
    builds a Call and hands it to `_send`, which Client runs and AsyncClient awaits."""

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Optional[str] = None) -> Any:
        """The value, or `default` when the key is absent or expired."""
        return self._send(Call("get", partial(_value_or, default), {"key": key}, allowed=(404,)))

    def get_many(self, keys: Iterable[str]) -> Any:
        """The values of the keys that hit."""
        keys = list(keys)
        if not keys:
            return self._send(Call(None, lambda status, body: {}))
        return self._send(Call("mget", _json, [("key", key) for key in keys]))

    def ttl(self, key: str) -> Any:
        """Seconds left before the key expires; None when it never does. KeyError if absent."""
        return self._send(Call("ttl", partial(_ttl, key), {"key": key}, allowed=(404,)))

    def stats(self) -> Any:
        return self._send(Call("stats", _json, {}))

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: Value, expire: int = 0) -> Any:
        """Store a value; `expire` is seconds from now (0: never), as in pymemcache."""
        return self._send(Call("set", _done, {"key": key, "value": value, "ttl": expire}))

    def set_many(self, values: Mapping[str, Value], expire: int = 0) -> Any:
        """Store many values in one /batch request; answer the keys that failed."""
        keys = list(values)
        if not keys:
            return self._send(Call(None, lambda status, body: []))
        commands = [
            {"verb": "set", "key": key, "value": str(value), "ttl": expire}
            for key, value in values.items()
        ]
        return self._send(Call("batch", partial(_failed_keys, keys), json_body=commands))

    def add(self, key: str, value: Value, expire: int = 0) -> Any:
        """Store only if the key is absent; False when it exists."""
        fields = {"key": key, "value": value, "ttl": expire}
        return self._send(Call("add", partial(_not, 409), fields, allowed=(409,)))

    def replace(self, key: str, value: Value, expire: int = 0) -> Any:
        """Store only if the key is present; False when it is absent."""
        fields = {"key": key, "value": value, "ttl": expire}
        return self._send(Call("replace", partial(_not, 404), fields, allowed=(404,)))

    def append(self, key: str, value: Value) -> Any:
        """Add after the current value (an absent key is set); the expiry is kept."""
        return self._send(Call("append", _done, {"key": key, "value": value}))

    def prepend(self, key: str, value: Value) -> Any:
        """Add before the current value (an absent key is set); the expiry is kept."""
        return self._send(Call("prepend", _done, {"key": key, "value": value}))

    def cas(self, key: str, value: Value, compare: str, expire: int = 0) -> Any:
        """Store if the current value equals `compare` (or the key is absent); else False."""
        fields = {"key": key, "value": value, "compare": compare, "ttl": expire}
        return self._send(Call("checkandset", _compared, fields, allowed=(400,)))

    checkandset = cas

    def incr(self, key: str, value: int = 1) -> Any:
        """Add `value` to the stored integer and answer the result (absent: set to `value`)."""
        fields = {"key": key, "value": value}
        return self._send(Call("increment", _integer, fields, prefer_value=True))

    def decr(self, key: str, value: int = 1) -> Any:
        """Subtract `value` from the stored integer and answer the result (absent: `value`)."""
        fields = {"key": key, "value": value}
        return self._send(Call("decrement", _integer, fields, prefer_value=True))

    def touch(self, key: str, expire: int = 0) -> Any:
        """Give the key a new expiry (seconds from now, 0: never); False when absent."""
        fields = {"key": key, "ttl": expire}
        return self._send(Call("touch", partial(_not, 404), fields, allowed=(404,)))

    def delete(self, key: str) -> Any:
        """Remove the key; answer whether it was there (one atomic request: `If-Match: *`)."""
        call = Call("delete", partial(_not, 412), {"key": key}, allowed=(412,), if_present=True)
        return self._send(call)

    def flush_all(self) -> Any:
        return self._send(Call("flush", _done, {}))

    def batch(self, commands: Iterable[Mapping[str, Any]]) -> Any:
        """Run commands (`{"verb": "set", "key": ..., ...}`) in one /batch request: one
        result (`{"status": 200, "value": ...}`) per command, in order."""
        return self._send(Call("batch", _json, json_body=list(commands)))

    # -- namespaces ----------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> Any:
        """Remove every key that starts with `prefix` (not empty); answer how many."""
        if not prefix:
            raise ValueError("delete_prefix needs a prefix; flush_all() removes every key")
        return self._send(Call("flush", _flushed, {"prefix": prefix}))

    def scan(self, prefix: str = "", cursor: str = "", limit: int = 100) -> Any:
        """One page of keys starting with `prefix` and the next cursor (empty: done)."""
        fields = {"prefix": prefix, "cursor": cursor, "limit": limit}
        return self._send(Call("keys", _page, fields))


def _value_or(default: Optional[str], status: int, body: bytes) -> Optional[str]:
    return default if status == 404 else body.decode("utf-8")


def _json(status: int, body: bytes) -> Any:
    return json.loads(body)


def _ttl(key: str, status: int, body: bytes) -> Optional[int]:
    if status == 404:
        raise KeyError(key)
    return json.loads(body)["ttl"]


def _done(status: int, body: bytes) -> bool:
    return True


def _not(refused: int, status: int, body: bytes) -> bool:
    """Whether the answer is other than `refused` (add: 409, replace and touch: 404...)."""
    return status != refused


def _failed_keys(keys: list[str], status: int, body: bytes) -> list[str]:
    return [key for key, result in zip(keys, json.loads(body)) if result["status"] != 204]


def _compared(status: int, body: bytes) -> bool:
    if status == 400:
        if json.loads(body).get("error") != "compare_mismatch":
            raise error_from_answer(status, body)  # any other 400 is bad input
        return False
    return True


def _integer(status: int, body: bytes) -> int:
    return int(body)


def _flushed(status: int, body: bytes) -> int:
    return json.loads(body)["flushed"]


def _page(status: int, body: bytes) -> tuple[list[str], str]:
    page = json.loads(body)
    return page["keys"], page["cursor"]


def encode_request(
    fields: Union[Mapping[str, Value], list[tuple[str, Value]], None],
    json_body: Optional[list],
    prefer_value: bool,
    if_present: bool,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one command's POST (shared by Client and AsyncClient)."""
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"}
    else:
        body = urlencode(fields or {}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if prefer_value:
        headers["Prefer"] = "return=representation"
    if if_present:
        headers["If-Match"] = "*"
    return body, headers


def error_from_answer(status: int, body: bytes) -> MemflaskError:
    try:
        document = json.loads(body)
        code, message = document["error"], document["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "unreadable_answer", body[:200].decode("utf-8", "replace")
    kind = _ERRORS.get(status, MemflaskServerError if status >= 500 else MemflaskError)
    return kind(status, code, message)


def check_answer_head(headers: Mapping[str, str], limit: int) -> Optional[int]:
    """Refuse an answer before its body: one announced over `limit` bytes, or one in a
    Content-Encoding not asked for (its decoded size is unknown until decoded). Answer
    the announced Content-Length, if any.

    Like a cut or late answer, these are no usable answer: status 0, whatever the server's.
    """
    encoding = headers.get("Content-Encoding", "identity")
    if encoding.lower() != "identity":
        raise MemflaskServerError(0, "unreadable_answer", f"Content-Encoding {encoding!r}")
    length = headers.get("Content-Length", "")
    # Past 18 digits it is over any limit (and int() of thousands of digits is refused).
    if not (length.isascii() and length.isdigit()):
        return None
    if len(length) > 18 or int(length) > limit:
        raise _answer_too_large(limit)
    return int(length)


class AnswerBody:
    """An answer's body as its chunks arrive, refused as soon as it passes `limit` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _answer_too_large(self.limit)
        self._chunks.append(chunk)

    def whole(self) -> bytes:
        return b"".join(self._chunks)


def _answer_too_large(limit: int) -> MemflaskAnswerTooLarge:
    message = f"the answer is over max_answer_bytes ({limit:,} bytes); not read"
    return MemflaskAnswerTooLarge(0, "answer_too_large", message)
