"""A Python client for a memflask server, with methods named as in pymemcache.

    from memflask.client import Client
    cache = Client("http://127.0.0.1:8000", token=None, timeout=5.0)
    cache.set("greeting", "hello", expire=60)   # expire: seconds from now, 0 = never
    cache.get("greeting")                       # "hello", or None when absent

Connections are kept alive and pooled (urllib3). Refusals raise a typed MemflaskError.

Given several servers (a list, or URLs separated by commas), each key goes to one of
them (memflask.placement), calls on many keys go to each server concurrently, and a
server that stops answering is set aside a while (memflask.sharding).

`timeout` is a deadline for the whole call: connecting, sending, the answer's header
block and its body. An answer over `max_answer_bytes` is refused (MemflaskAnswerTooLarge)
as soon as its Content-Length, or its count while reading, passes the limit.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generator, Iterator, Optional, Sequence, Union

import urllib3

from .answers import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerBody,
    MemflaskAnswerTooLarge,
    MemflaskAuthenticationError,
    MemflaskConnectionError,
    MemflaskError,
    MemflaskForbiddenError,
    MemflaskPreconditionFailed,
    MemflaskServerError,
    MemflaskTimeout,
    MemflaskValidationError,
    MemflaskValueTooLarge,
    check_answer_head,
    error_from_answer,
)
from .calls import Fields, Plan, Value
from .deadlines import call_deadline, deadline_connection
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

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "Client",
    "MemflaskAnswerTooLarge",
    "MemflaskAuthenticationError",
    "MemflaskConnectionError",
    "MemflaskError",
    "MemflaskForbiddenError",
    "MemflaskPreconditionFailed",
    "MemflaskServerError",
    "MemflaskTimeout",
    "MemflaskValidationError",
    "MemflaskValueTooLarge",
    "Value",
]

# How much of an answer's body one read asks for.
READ_CHUNK_BYTES = 64 * 1024


class Client(Verbs):
    """A pooled keep-alive client; safe to share between threads."""

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
        """`url`: one server, or several (a list, or separated by commas); `timeout`:
        seconds one call may take in all (None: no limit); `max_answer_bytes`: the largest
        answer body read; `max_connections`: per server. Several servers: see
        memflask.sharding for `dead_after`, `dead_timeout`, `ignore_unavailable` and
        `remap_dead`. An https:// server's certificate is verified, by the system's CAs or
        those in `ca_file` (PEM)."""
        self.urls = server_urls(url)
        self.url = ",".join(self.urls)
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._servers = Servers(
            self.urls,
            dead_after=dead_after,
            dead_timeout=dead_timeout,
            ignore_unavailable=ignore_unavailable,
            remap_dead=remap_dead,
        )
        self._pools = {
            server: self._pool_for(server, max_connections, ca_file) for server in self.urls
        }
        self._fanout: Optional[ThreadPoolExecutor] = None  # started by the first fan-out
        self._fanout_lock = threading.Lock()

    def _pool_for(
        self, server: str, max_connections: int, ca_file: Optional[str]
    ) -> urllib3.HTTPConnectionPool:
        verified = {"ca_certs": ca_file} if ca_file and server.startswith("https:") else {}
        pool = urllib3.connection_from_url(
            server,
            maxsize=max_connections,
            block=False,
            timeout=urllib3.Timeout(total=self.timeout),
            retries=False,
            **verified,
        )
        # Connections that send and read within each call's deadline (memflask.deadlines).
        pool.ConnectionCls = deadline_connection(pool.scheme)
        return pool

    def get_or_set(
        self,
        key: str,
        default: Union[Value, Callable[[], Value]],
        expire: int = 0,
        lease: int = DEFAULT_LEASE_SECONDS,
        stale: Optional[int] = None,
    ) -> Any:
        """The key's value; on a miss, `default` (a value, or a function called for it) is
        stored for `expire` seconds (0: never) and returned, computed by one caller at a
        time across every process: the others wait for it, within `lease` seconds (the
        longest the computation may take). `stale`: seconds the value is kept past its
        expiry, answered to callers while one refreshes it (memflask.stampede)."""
        compute = default if callable(default) else lambda: default
        return self._drive(get_or_set_steps(key, expire, lease, stale), compute)

    def get_leased(self, key: str, lease: int = DEFAULT_LEASE_SECONDS) -> Any:
        """(value, None) on a hit; (None, token) when this caller is to compute the value
        and `set(key, value, lease=token)`; waits while another caller holds the lease."""
        return self._drive(lease_read_steps(key, lease), None)

    def _drive(self, steps: Generator[Step, Any, Any], compute: Optional[Callable]) -> Any:
        """Run memflask.stampede's steps: send, sleep, compute, until they return."""
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Compute):
                reply = compute()
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
                reply = None
            else:
                reply = self._send(step)

    def iter_keys(self, prefix: str = "", limit: int = 100) -> Iterator[str]:
        """Every key starting with `prefix`, following the cursor (as redis-py's scan_iter).

        A key present for the whole iteration comes at least once; one may come twice.
        """
        cursor = ""
        while True:
            keys, cursor = self.scan(prefix, cursor, limit)
            yield from keys
            if not cursor:
                return

    def close(self) -> None:
        if self._fanout is not None:
            self._fanout.shutdown(wait=True)
        for pool in self._pools.values():
            pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, plan: Plan) -> Any:
        dispatch = self._servers.plan(plan)
        if len(dispatch.requests) <= 1:
            return dispatch.merge([self._attempt(request) for request in dispatch.requests])
        with self._fanout_lock:
            if self._fanout is None:
                self._fanout = ThreadPoolExecutor(len(self.urls), thread_name_prefix="memflask")
        return dispatch.merge(list(self._fanout.map(self._attempt, dispatch.requests)))

    def _attempt(self, request: Request) -> Any:
        """One request to its server, unless that one is set aside; its result."""
        server, call = request
        refusal = self._servers.refusal(server)
        if refusal is not None:
            return self._servers.unanswered(call, refusal)
        try:
            status, body = self._call(call.verb, call.fields, server=server, **call.options())
        except MemflaskConnectionError as error:
            self._servers.failed(server)
            return self._servers.unanswered(call, error)
        self._servers.answered(server)
        return call.result(status, body)

    # -- the wire ------------------------------------------------------------------------

    def _call(
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

        `if_present` sends `If-Match: *`: the write applies only to a key that exists
        (412 otherwise).
        """
        server = server or self.urls[0]
        body, headers = encode_request(fields, json_body, prefer_value, if_present)
        with call_deadline(self.timeout) as deadline:
            try:
                response = self._pools[server].urlopen(
                    "POST",
                    f"/{verb}",
                    body=body,
                    headers={**self._headers, **headers},
                    preload_content=False,
                    decode_content=False,
                )
                data = self._read_body(response)
            except urllib3.exceptions.HTTPError as error:
                raise self._no_answer(server, error, deadline) from error
        if response.status < 300 or response.status in allowed:
            return response.status, data
        raise error_from_answer(response.status, data)

    def _read_body(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """The answer's body, read in chunks and counted: over max_answer_bytes, refused
        (the connection is closed, not drained). A cut body raises urllib3's ProtocolError."""
        try:
            length = check_answer_head(response.headers, self.max_answer_bytes)
            if length is not None and not response.chunked:
                # http.client reads exactly `length` (within the limit) in one call.
                return response.read(decode_content=False)
            body = AnswerBody(self.max_answer_bytes)
            while True:
                chunk = response.read(READ_CHUNK_BYTES, decode_content=False)
                if not chunk:
                    return body.whole()
                body.add(chunk)
        except MemflaskError:
            response.close()  # the rest of the answer stays unread: not for the next call
            raise
        finally:
            response.release_conn()  # back to the pool (a closed one reconnects)

    def _no_answer(
        self, server: str, error: urllib3.exceptions.HTTPError, deadline: Optional[float]
    ) -> MemflaskConnectionError:
        # Decided by the clock: urllib3 reports a send that ran out of time as a
        # ProtocolError, and a read that did as a ReadTimeoutError.
        if deadline is not None and time.monotonic() >= deadline:
            message = f"no complete answer from {server} within {self.timeout:g} s"
            return MemflaskTimeout(0, "timeout", message)
        return MemflaskConnectionError(0, "connection_error", str(error))
