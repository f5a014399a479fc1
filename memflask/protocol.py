"""What both clients (memflask.client's Client, memflask.aio's AsyncClient) share: the
verbs, described once (`Verbs`: each method builds a `Call`, which the sync client sends
and the async one awaits, as redis-py's command mixins; a call on many keys or on every
server is a `Spread` or an `Everywhere` of calls (memflask.calls), for a client on several
servers), and the request's encoding (memflask.answers reads the answers). Imports no
HTTP library."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Iterable, Mapping, Optional, Sequence, Union
from urllib.parse import urlencode

from .answers import MemflaskServerError, error_from_answer
from .calls import Call, Everywhere, Plan, Spread, Value


class Verbs:
    """The verbs, described once for both clients (redis-py's pattern): each method
    builds a Call (or a Spread, an Everywhere) and hands it to `_send`, which Client runs
    and AsyncClient awaits."""

    def _send(self, plan: Plan) -> Any:
        raise NotImplementedError

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Optional[str] = None) -> Any:
        """The value, or `default` when the key is absent or expired."""
        call = Call(
            "get", partial(_value_or, default), {"key": key}, allowed=(404,), missing=default
        )
        return self._send(call)

    def get_many(self, keys: Iterable[str]) -> Any:
        """The values of the keys that hit."""
        keys = list(keys)
        if not keys:
            return self._send(Call(None, lambda status, body: {}))
        return self._send(Spread(list(enumerate(keys)), _multi_get, _found_in_order, _second))

    def ttl(self, key: str) -> Any:
        """Seconds left before the key expires; None when it never does. KeyError if absent."""
        return self._send(Call("ttl", partial(_ttl, key), {"key": key}, allowed=(404,)))

    def stats(self) -> Any:
        """The server's /stats; on several servers, the counts summed and each server's
        own under "servers" (None for one that is unavailable, when that is ignored)."""
        return self._send(Everywhere(Call("stats", _json, {}, missing=None), _stats))

    # -- writes --------------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Value,
        expire: int = 0,
        *,
        lease: Optional[str] = None,
        stale: Optional[int] = None,
    ) -> Any:
        """Store a value; `expire` is seconds from now (0: never), as in pymemcache.
        `lease`: a token get_leased gave: stored only while that lease is current (False
        otherwise); `stale`: seconds it is kept past its expiry for lease readers."""
        if lease is not None:
            return self._send(lease_fill(key, value, expire, lease, stale))
        fields = {"key": key, "value": value, "ttl": expire}
        if stale is not None:
            fields["stale"] = stale
        return self._send(Call("set", _done, fields, missing=False))

    def set_many(self, values: Mapping[str, Value], expire: int = 0) -> Any:
        """Store many values in one /batch request; answer the keys that failed."""
        keys = list(values)
        if not keys:
            return self._send(Call(None, lambda status, body: []))
        commands = [
            {"verb": "set", "key": key, "value": str(value), "ttl": expire}
            for key, value in values.items()
        ]
        spread = Spread(list(enumerate(commands)), _set_some, _failed_in_order, _command_key)
        return self._send(spread)

    def add(self, key: str, value: Value, expire: int = 0) -> Any:
        """Store only if the key is absent; False when it exists."""
        fields = {"key": key, "value": value, "ttl": expire}
        return self._send(Call("add", partial(_not, 409), fields, allowed=(409,), missing=False))

    def replace(self, key: str, value: Value, expire: int = 0) -> Any:
        """Store only if the key is present; False when it is absent."""
        fields = {"key": key, "value": value, "ttl": expire}
        call = Call("replace", partial(_not, 404), fields, allowed=(404,), missing=False)
        return self._send(call)

    def append(self, key: str, value: Value) -> Any:
        """Add after the current value (an absent key is set); the expiry is kept."""
        return self._send(Call("append", _done, {"key": key, "value": value}, missing=False))

    def prepend(self, key: str, value: Value) -> Any:
        """Add before the current value (an absent key is set); the expiry is kept."""
        return self._send(Call("prepend", _done, {"key": key, "value": value}, missing=False))

    def cas(self, key: str, value: Value, compare: str, expire: int = 0) -> Any:
        """Store if the current value equals `compare` (or the key is absent); else False."""
        fields = {"key": key, "value": value, "compare": compare, "ttl": expire}
        return self._send(Call("checkandset", _compared, fields, allowed=(400,), missing=False))

    checkandset = cas

    def incr(self, key: str, value: int = 1) -> Any:
        """Add `value` to the stored integer and answer the result (absent: set to `value`)."""
        fields = {"key": key, "value": value}
        return self._send(Call("increment", _integer, fields, prefer_value=True, missing=None))

    def decr(self, key: str, value: int = 1) -> Any:
        """Subtract `value` from the stored integer and answer the result (absent: `value`)."""
        fields = {"key": key, "value": value}
        return self._send(Call("decrement", _integer, fields, prefer_value=True, missing=None))

    def touch(self, key: str, expire: int = 0) -> Any:
        """Give the key a new expiry (seconds from now, 0: never); False when absent."""
        fields = {"key": key, "ttl": expire}
        return self._send(Call("touch", partial(_not, 404), fields, allowed=(404,), missing=False))

    def delete(self, key: str) -> Any:
        """Remove the key; answer whether it was there (one atomic request: `If-Match: *`)."""
        call = Call(
            "delete",
            partial(_not, 412),
            {"key": key},
            allowed=(412,),
            if_present=True,
            missing=False,
        )
        return self._send(call)

    def invalidate(self, key: str) -> Any:
        """Make the value stale (memcached's `md key I`): plain reads miss it, as after a
        delete, while get_or_set callers get it until one of them has refreshed it. False
        when the key is absent."""
        call = Call("invalidate", partial(_not, 404), {"key": key}, allowed=(404,), missing=False)
        return self._send(call)

    def delete_many(self, keys: Iterable[str]) -> Any:
        """Remove the keys, one /batch request per server; True (False when a server was
        unavailable and that is ignored), as pymemcache's delete_many."""
        keys = list(keys)
        if not keys:
            return self._send(Call(None, lambda status, body: True))
        commands = [{"verb": "delete", "key": key} for key in keys]
        spread = Spread(list(enumerate(commands)), _delete_some, _all_deleted, _command_key)
        return self._send(spread)

    def flush_all(self) -> Any:
        """Remove every key (on every server)."""
        return self._send(Everywhere(Call("flush", _done, {}, missing=False), _all_done))

    def batch(self, commands: Iterable[Mapping[str, Any]]) -> Any:
        """Run commands (`{"verb": "set", "key": ..., ...}`) in one /batch request: one
        result (`{"status": 200, "value": ...}`) per command, in order. On several servers,
        one /batch per server, each command on its key's server (each needs a key)."""
        spread = Spread(list(enumerate(commands)), _batch_some, _results_in_order, _command_key)
        return self._send(spread)

    # -- namespaces ----------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> Any:
        """Remove every key that starts with `prefix` (not empty); answer how many."""
        if not prefix:
            raise ValueError("delete_prefix needs a prefix; flush_all() removes every key")
        return self._send(Everywhere(Call("flush", _flushed, {"prefix": prefix}, missing=0), _sum))

    def scan(self, prefix: str = "", cursor: str = "", limit: int = 100) -> Any:
        """One page of keys starting with `prefix` and the next cursor (empty: done)."""
        fields = {"prefix": prefix, "cursor": cursor, "limit": limit}
        return self._send(Call("keys", _page, fields))


def one_command_batch(command: Mapping[str, Any]) -> Spread:
    """A /batch of one command, sent to its key's server: answers the command's result
    entry, which carries what headers would (a lease read's `lease`, `retryAfter`)."""
    return Spread([(0, command)], _batch_some, _results_in_order, _command_key)


def lease_fill(key: str, value: Any, expire: int, token: str, stale: Optional[int]) -> Call:
    """The write of a computed value under its lease: True, or False when the lease was
    no longer current (another write came first), and nothing changed."""
    fields = {"key": key, "value": value, "ttl": expire, "lease": token}
    if stale is not None:
        fields["stale"] = stale
    return Call("set", _filled, fields, allowed=(412,), missing=False)


def _filled(status: int, body: bytes) -> bool:
    return status != 412


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


# -- calls on many keys or on every server, and how their results join --------------------


def _multi_get(indexed: list[tuple[int, str]]) -> Call:
    return Call("mget", _json, [("key", key) for _, key in indexed], missing={})


def _found_in_order(parts: list[tuple[list[tuple[int, str]], dict]]) -> dict[str, str]:
    """The values found, in the order the caller gave the keys."""
    found = {key: value for _, part in parts for key, value in part.items()}
    every = sorted(item for indexed, _ in parts for item in indexed)
    return {key: found[key] for _, key in every if key in found}


def _second(indexed: tuple[int, str]) -> str:
    return indexed[1]


def _command_key(indexed: tuple[int, Mapping[str, Any]]) -> str:
    command = indexed[1]
    if not isinstance(command, Mapping) or not isinstance(command.get("key"), str):
        raise ValueError(f"a /batch command without a key goes to no one server: {command!r}")
    return command["key"]


def _set_some(indexed: list[tuple[int, Mapping[str, Any]]]) -> Call:
    keys = [command["key"] for _, command in indexed]
    commands = [command for _, command in indexed]
    return Call("batch", partial(_failed_keys, keys), json_body=commands, missing=keys)


def _failed_in_order(parts: list[tuple[list[tuple[int, Any]], list[str]]]) -> list[str]:
    failed = set()
    for _, keys in parts:
        failed.update(keys)
    every = sorted((index, command["key"]) for indexed, _ in parts for index, command in indexed)
    return [key for _, key in every if key in failed]


def _delete_some(indexed: list[tuple[int, Mapping[str, Any]]]) -> Call:
    return Call("batch", _json, json_body=[command for _, command in indexed], missing=None)


def _all_deleted(parts: list[tuple[list[tuple[int, Any]], Optional[list]]]) -> bool:
    """True once every server deleted its keys; a refused entry raises its error."""
    for _, results in parts:
        for result in results or ():
            if result["status"] != 204:
                raise error_from_answer(result["status"], json.dumps(result).encode())
    return all(results is not None for _, results in parts)


def _batch_some(indexed: list[tuple[int, Mapping[str, Any]]]) -> Call:
    unavailable = {"status": 503, "error": "unavailable", "message": "server unavailable"}
    commands = [command for _, command in indexed]
    return Call("batch", _json, json_body=commands, missing=[unavailable] * len(commands))


def _results_in_order(parts: list[tuple[list[tuple[int, Any]], list]]) -> list:
    ordered = sorted(
        (index, result)
        for indexed, results in parts
        for (index, _), result in zip(indexed, results)
    )
    return [result for _, result in ordered]


def _all_done(parts: Sequence[tuple[str, bool]]) -> bool:
    return all(done for _, done in parts)


def _sum(parts: Sequence[tuple[str, int]]) -> int:
    return sum(count for _, count in parts)


def _stats(parts: Sequence[tuple[str, Optional[dict]]]) -> dict:
    """One server's stats as they are; several servers' counts summed (the store's
    counters, and `commands` verb by verb), and each one's own under "servers"."""
    if len(parts) == 1:
        return parts[0][1] or {}
    for url, stats in parts:
        if stats is not None and not _summable(stats):
            raise MemflaskServerError(
                0, "unreadable_answer", f"{url} answered /stats with counts that are not integers"
            )
    answered = [stats for _, stats in parts if stats is not None]
    summed: dict[str, Any] = {
        name: sum(stats[name] for stats in answered)
        for name in SUMMED_STATS
        if answered and all(isinstance(stats.get(name), int) for stats in answered)
    }
    if answered and all(isinstance(stats.get("commands"), dict) for stats in answered):
        commands: dict[str, int] = {}
        for stats in answered:
            for verb, count in stats["commands"].items():
                commands[verb] = commands.get(verb, 0) + count
        summed["commands"] = dict(sorted(commands.items()))
    return {**summed, "servers": dict(parts)}


def _summable(stats: Any) -> bool:
    """Whether a server's /stats can be summed: an object whose counts (those it has: an
    older server lacks newer ones) are integers, and `commands` verbs' too."""
    if not isinstance(stats, dict):
        return False
    counts = [stats[name] for name in SUMMED_STATS if name in stats]
    commands = stats.get("commands", {})
    if not isinstance(commands, dict):
        return False
    return all(type(count) is int for count in [*counts, *commands.values()])


def _compared(status: int, body: bytes) -> bool:
    if status == 400:
        if json.loads(body).get("error") != "compare_mismatch":
            raise error_from_answer(status, body)  # any other 400 is bad input
        return False
    return True


def _integer(status: int, body: bytes) -> int:
    return int(body)


# The /stats counts that add up over several servers.
SUMMED_STATS = (
    "keyCount",
    "maxSize",
    "bytes",
    "maxBytes",
    "hits",
    "misses",
    "evictions",
    "expired",
    "leases",
    "staleAnswers",
    "leaseFills",
)


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
