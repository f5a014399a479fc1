"""An asyncio client for a memflask server: memflask.client.Client's methods, awaited.

    from memflask.aio import AsyncClient
    async with AsyncClient("http://127.0.0.1:8000", token=None, timeout=5.0) as cache:
        await cache.set("greeting", "hello", expire=60)   # expire: seconds from now, 0 = never
        await cache.get("greeting")                       # "hello", or None when absent

For asyncio apps (FastAPI, Starlette, aiohttp servers): one client per app, shared by
every task. Connections are pooled and kept alive (httpx, the `memflask[aio]` extra); a
task waits for a free connection when all `max_connections` are busy. Refusals raise the
same MemflaskError subclasses as the sync client, built by the same function.

`timeout` is a deadline for the whole call, as in the sync client: waiting for a pooled
connection, connecting, sending and reading the whole answer (MemflaskTimeout after it).
An answer over `max_answer_bytes` is refused (MemflaskAnswerTooLarge), not read whole.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Iterable, Mapping, Optional, Union

import anyio
import httpx

from .client import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerBody,
    MemflaskConnectionError,
    MemflaskTimeout,
    Value,
    _error,
    _request,
    check_answer_head,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """A pooled keep-alive asyncio client; one instance is shared by every task of a loop."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: Optional[str] = None,
        timeout: Optional[float] = 5.0,
        max_connections: int = 10,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ):
        """`timeout`: seconds one call may take in all (None: no limit);
        `max_answer_bytes`: the largest answer body read."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The body as sent: a compressed one's decoded size is unknown until decoded.
        headers["Accept-Encoding"] = "identity"
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            # httpx bounds each step (a pool wait, a connect, one read); _call bounds
            # their sum: a burst queues, a stuck or trickling server is an error.
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            # The environment's proxies (HTTP_PROXY...) are for the web, not for a cache
            # next to the app; the sync client (urllib3) ignores them too.
            trust_env=False,
        )

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value, or `default` when the key is absent or expired."""
        status, body = await self._call("get", {"key": key}, allowed=(404,))
        return default if status == 404 else body.decode("utf-8")

    async def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """The values of the keys that hit."""
        keys = list(keys)
        if not keys:
            return {}
        return json.loads((await self._call("mget", [("key", key) for key in keys]))[1])

    async def ttl(self, key: str) -> Optional[int]:
        """Seconds left before the key expires; None when it never does. KeyError if absent."""
        status, body = await self._call("ttl", {"key": key}, allowed=(404,))
        if status == 404:
            raise KeyError(key)
        return json.loads(body)["ttl"]

    async def stats(self) -> dict[str, Any]:
        return json.loads((await self._call("stats", {}))[1])

    # -- writes --------------------------------------------------------------------------

    async def set(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store a value; `expire` is seconds from now (0: never), as in pymemcache."""
        await self._call("set", {"key": key, "value": value, "ttl": expire})
        return True

    async def set_many(self, values: Mapping[str, Value], expire: int = 0) -> list[str]:
        """Store many values in one /batch request; answer the keys that failed."""
        commands = [
            {"verb": "set", "key": key, "value": str(value), "ttl": expire}
            for key, value in values.items()
        ]
        if not commands:
            return []
        results = json.loads((await self._call("batch", json_body=commands))[1])
        return [key for key, result in zip(values, results) if result["status"] != 204]

    async def add(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store only if the key is absent; False when it exists."""
        fields = {"key": key, "value": value, "ttl": expire}
        status, _ = await self._call("add", fields, allowed=(409,))
        return status != 409

    async def replace(self, key: str, value: Value, expire: int = 0) -> bool:
        """Store only if the key is present; False when it is absent."""
        fields = {"key": key, "value": value, "ttl": expire}
        status, _ = await self._call("replace", fields, allowed=(404,))
        return status != 404

    async def append(self, key: str, value: Value) -> bool:
        """Add after the current value (an absent key is set); the expiry is kept."""
        await self._call("append", {"key": key, "value": value})
        return True

    async def prepend(self, key: str, value: Value) -> bool:
        """Add before the current value (an absent key is set); the expiry is kept."""
        await self._call("prepend", {"key": key, "value": value})
        return True

    async def cas(self, key: str, value: Value, compare: str, expire: int = 0) -> bool:
        """Store if the current value equals `compare` (or the key is absent); else False."""
        fields = {"key": key, "value": value, "compare": compare, "ttl": expire}
        status, body = await self._call("checkandset", fields, allowed=(400,))
        if status == 400:
            if json.loads(body).get("error") != "compare_mismatch":
                raise _error(status, body)  # any other 400 is bad input, as in Client
            return False
        return True

    checkandset = cas

    async def incr(self, key: str, value: int = 1) -> int:
        """Add `value` to the stored integer and answer the result (absent: set to `value`)."""
        fields = {"key": key, "value": value}
        return int((await self._call("increment", fields, prefer_value=True))[1])

    async def decr(self, key: str, value: int = 1) -> int:
        """Subtract `value` from the stored integer and answer the result (absent: `value`)."""
        fields = {"key": key, "value": value}
        return int((await self._call("decrement", fields, prefer_value=True))[1])

    async def touch(self, key: str, expire: int = 0) -> bool:
        """Give the key a new expiry (seconds from now, 0: never); False when absent."""
        status, _ = await self._call("touch", {"key": key, "ttl": expire}, allowed=(404,))
        return status != 404

    async def delete(self, key: str) -> bool:
        """Remove the key; answer whether it was there (one atomic request: `If-Match: *`)."""
        status, _ = await self._call("delete", {"key": key}, allowed=(412,), if_present=True)
        return status != 412

    async def flush_all(self) -> bool:
        await self._call("flush", {})
        return True

    # -- namespaces ----------------------------------------------------------------------

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with `prefix` (not empty); answer how many."""
        if not prefix:
            raise ValueError("delete_prefix needs a prefix; flush_all() removes every key")
        return json.loads((await self._call("flush", {"prefix": prefix}))[1])["flushed"]

    async def scan(
        self, prefix: str = "", cursor: str = "", limit: int = 100
    ) -> tuple[list[str], str]:
        """One page of keys starting with `prefix` and the next cursor (empty: done)."""
        fields = {"prefix": prefix, "cursor": cursor, "limit": limit}
        page = json.loads((await self._call("keys", fields))[1])
        return page["keys"], page["cursor"]

    async def iter_keys(self, prefix: str = "", limit: int = 100) -> AsyncIterator[str]:
        """Every key starting with `prefix`, following the cursor: `async for key in ...`.

        A key present for the whole iteration comes at least once; one may come twice.
        """
        cursor = ""
        while True:
            keys, cursor = await self.scan(prefix, cursor, limit)
            for key in keys:
                yield key
            if not cursor:
                return

    async def close(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the wire ------------------------------------------------------------------------

    async def _call(
        self,
        verb: str,
        fields: Union[Mapping[str, Value], list[tuple[str, Value]], None] = None,
        *,
        json_body: Optional[list] = None,
        allowed: tuple[int, ...] = (),
        prefer_value: bool = False,
        if_present: bool = False,
    ) -> tuple[int, bytes]:
        """POST one command (a form body, or JSON for /batch); raise for a refusal.

        The same request as Client._call sends, and the same refusals (client._error).
        """
        body, headers = _request(fields, json_body, prefer_value, if_present)
        try:
            # anyio's deadline cancels the whole call, on asyncio as on trio.
            with anyio.fail_after(self.timeout):
                request = self._http.stream("POST", f"/{verb}", content=body, headers=headers)
                async with request as response:
                    data = await self._read_body(response)
        except (TimeoutError, httpx.TimeoutException) as error:
            message = f"no complete answer from {self.url} within {self.timeout:g} s"
            raise MemflaskTimeout(0, "timeout", message) from error
        except httpx.HTTPError as error:
            # Refused connections, a server gone mid-answer: no usable answer.
            message = str(error) or type(error).__name__
            raise MemflaskConnectionError(0, "connection_error", message) from error
        if response.status_code < 300 or response.status_code in allowed:
            return response.status_code, data
        raise _error(response.status_code, data)

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The answer's body, read as it arrives and counted: over max_answer_bytes, it
        is refused and the connection closed (leaving the stream unread closes it)."""
        check_answer_head(response.headers, self.max_answer_bytes)
        answer = AnswerBody(self.max_answer_bytes)
        async for chunk in response.aiter_raw():
            answer.add(chunk)
        return answer.whole()
