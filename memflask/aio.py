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
Several servers are spread over as by the sync client (memflask.sharding), the calls to
each running concurrently.
"""

from __future__ import annotations

import inspect
import ssl
from typing import Any, AsyncIterator, Callable, Generator, Optional, Sequence, Union

import anyio
import httpx

from .answers import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerBody,
    MemflaskConnectionError,
    MemflaskTimeout,
    check_answer_head,
    error_from_answer,
)
from .calls import Fields, Plan
from .protocol import Verbs, encode_request
from .sharding import DEAD_AFTER, DEAD_TIMEOUT, Request, Servers, server_urls
from .stampede import (
    DEFAULT_LEASE_SECONDS,
    Compute,
    Pause,
    Step,
    get_or_set_steps,
    lease_read_steps,
)

__all__ = ["AsyncClient"]


class AsyncClient(Verbs):
    """A pooled keep-alive asyncio client; one instance is shared by every task of a loop."""

    def __init__(
        self,
        url: Union[str, Sequence[str]] = "http://127.0.0.1:8000",
        token: Optional[str] = None,
        timeout: Optional[float] = 5.0,
        max_connections: int = 10,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        *,
        dead_after: int = DEAD_AFTER,
        dead_timeout: float = DEAD_TIMEOUT,
        ignore_unavailable: bool = False,
        remap_dead: bool = False,
        ca_file: Optional[str] = None,
    ):
        """The sync Client's arguments: `url` one server or several, `timeout` seconds one
        call may take in all (None: no limit), `max_answer_bytes` the largest answer body
        read, `max_connections` per server, `ca_file` the CAs an https:// server is
        verified by (default: the system's); memflask.sharding for the rest."""
        self.urls = server_urls(url)
        self.url = ",".join(self.urls)
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._servers = Servers(
            self.urls,
            dead_after=dead_after,
            dead_timeout=dead_timeout,
            ignore_unavailable=ignore_unavailable,
            remap_dead=remap_dead,
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The body as sent: a compressed one's decoded size is unknown until decoded.
        headers["Accept-Encoding"] = "identity"
        self._https = {
            server: httpx.AsyncClient(
                base_url=server,
                headers=headers,
                # httpx bounds each step (a pool wait, a connect, one read); _call bounds
                # their sum: a burst queues, a stuck or trickling server is an error.
                timeout=httpx.Timeout(timeout),
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                # The environment's proxies (HTTP_PROXY...) are for the web, not for a
                # cache next to the app; the sync client (urllib3) ignores them too.
                trust_env=False,
                verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
            )
            for server in self.urls
        }
        self._http = self._https[self.urls[0]]

    async def get_or_set(
        self,
        key: str,
        default: Any,
        expire: int = 0,
        lease: int = DEFAULT_LEASE_SECONDS,
        stale: Optional[int] = None,
    ) -> Any:
        """Client.get_or_set, awaited; `default` may also be an async function."""
        compute = default if callable(default) else lambda: default
        return await self._drive(get_or_set_steps(key, expire, lease, stale), compute)

    async def get_leased(self, key: str, lease: int = DEFAULT_LEASE_SECONDS) -> Any:
        """Client.get_leased, awaited."""
        return await self._drive(lease_read_steps(key, lease), None)

    async def _drive(self, steps: Generator[Step, Any, Any], compute: Optional[Callable]) -> Any:
        """Client._drive, awaited (the computation may be an async function)."""
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Compute):
                reply = compute()
                if inspect.isawaitable(reply):
                    reply = await reply
            elif isinstance(step, Pause):
                await anyio.sleep(step.seconds)
                reply = None
            else:
                reply = await self._send(step)

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
        for http in self._https.values():
            await http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the wire ------------------------------------------------------------------------

    async def _send(self, plan: Plan) -> Any:
        """Client._send, awaited: the same plan, the same result; the requests to several
        servers run concurrently."""
        dispatch = self._servers.plan(plan)
        requests = dispatch.requests
        if len(requests) <= 1:
            return dispatch.merge([await self._attempt(request) for request in requests])
        outcomes: list[Any] = [None] * len(requests)

        async def attempt(index: int) -> None:
            try:
                outcomes[index] = (True, await self._attempt(requests[index]))
            except Exception as error:  # raised below, in request order, not as a group
                outcomes[index] = (False, error)

        async with anyio.create_task_group() as group:
            for index in range(len(requests)):
                group.start_soon(attempt, index)
        for succeeded, outcome in outcomes:
            if not succeeded:
                raise outcome
        return dispatch.merge([outcome for _, outcome in outcomes])

    async def _attempt(self, request: Request) -> Any:
        """Client._attempt, awaited."""
        server, call = request
        refusal = self._servers.refusal(server)
        if refusal is not None:
            return self._servers.unanswered(call, refusal)
        try:
            status, body = await self._call(call.verb, call.fields, server=server, **call.options())
        except MemflaskConnectionError as error:
            self._servers.failed(server)
            return self._servers.unanswered(call, error)
        self._servers.answered(server)
        return call.result(status, body)

    async def _call(
        self,
        verb: str,
        fields: Fields = None,
        *,
        json_body: Optional[list] = None,
        allowed: tuple[int, ...] = (),
        prefer_value: bool = False,
        if_present: bool = False,
        server: Optional[str] = None,
    ) -> tuple[int, bytes]:
        """POST one command (a form body, or JSON for /batch) to `server` (by default the
        first); raise for a refusal.

        The same request as Client._call sends, and the same refusals (client.error_from_answer).
        """
        server = server or self.urls[0]
        http = self._https[server]
        body, headers = encode_request(fields, json_body, prefer_value, if_present)
        try:
            # anyio's deadline cancels the whole call, on asyncio as on trio.
            with anyio.fail_after(self.timeout):
                request = http.stream("POST", f"/{verb}", content=body, headers=headers)
                async with request as response:
                    data = await self._read_body(response)
        except (TimeoutError, httpx.TimeoutException) as error:
            message = f"no complete answer from {server} within {self.timeout:g} s"
            raise MemflaskTimeout(0, "timeout", message) from error
        except httpx.HTTPError as error:
            # Refused connections, a server gone mid-answer: no usable answer.
            message = str(error) or type(error).__name__
            raise MemflaskConnectionError(0, "connection_error", message) from error
        if response.status_code < 300 or response.status_code in allowed:
            return response.status_code, data
        raise error_from_answer(response.status_code, data)

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The answer's body, read as it arrives and counted: over max_answer_bytes, it
        is refused and the connection closed (leaving the stream unread closes it)."""
        check_answer_head(response.headers, self.max_answer_bytes)
        answer = AnswerBody(self.max_answer_bytes)
        async for chunk in response.aiter_raw():
            answer.add(chunk)
        return answer.whole()
