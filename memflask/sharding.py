"""Several memflask servers behind one client: which server each call goes to (each key
to one, by memflask.placement), and which servers are unavailable, marked as memcached
clients mark them (pymemcache's HashClient: `dead_timeout`, `ignore_exc`). Shared by
Client and AsyncClient, which send the requests planned here, the sync one on threads,
the async one concurrently on its event loop.

A server that fails to answer (refused, reset, timed out) `dead_after` calls in a row is
unavailable for `dead_timeout` seconds: its calls fail at once, without a request, so
keys of the other servers never wait on it. Then the next call tries it again; a failure
then makes it unavailable again at once. While a server is unavailable its calls raise
MemflaskConnectionError, or, with `ignore_unavailable`, read as misses and drop writes
(Call.missing). With `remap_dead`, its keys go to the other servers meanwhile (they may
then serve stale values once it is back). One server alone is never marked.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

from .answers import MemflaskConnectionError
from .calls import UNANSWERED, Call, Everywhere, Plan
from .placement import server_for

DEAD_AFTER = 2  # failed calls in a row that make a server unavailable
DEAD_TIMEOUT = 60.0  # seconds it stays so (pymemcache's default dead_timeout)


class Request(NamedTuple):
    server: str  # its URL
    call: Call


class Dispatch(NamedTuple):
    """What a plan sends, and how the requests' results (in order) make its result."""

    requests: list[Request]
    merge: Callable[[list[Any]], Any]


def server_urls(url: Union[str, Sequence[str]]) -> list[str]:
    """The servers' URLs, without a trailing "/": one, a list, or a comma-separated string."""
    urls = url.split(",") if isinstance(url, str) else list(url)
    if not all(isinstance(each, str) for each in urls):
        raise TypeError(f"server URLs are strings, got {url!r}")
    cleaned = [each.strip().rstrip("/") for each in urls if each.strip()]
    if not cleaned:
        raise ValueError("no server URL given")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"a server is listed twice: {cleaned}")
    return cleaned


class Servers:
    """A client's servers: where each call goes, and which are unavailable; thread-safe."""

    def __init__(
        self,
        urls: list[str],
        *,
        dead_after: int = DEAD_AFTER,
        dead_timeout: float = DEAD_TIMEOUT,
        ignore_unavailable: bool = False,
        remap_dead: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        if dead_after < 1 or dead_timeout < 0:
            raise ValueError("dead_after must be 1 or more, dead_timeout 0 or more")
        self.urls = urls
        self.dead_after = dead_after
        self.dead_timeout = dead_timeout
        self.ignore_unavailable = ignore_unavailable
        self.remap_dead = remap_dead
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = dict.fromkeys(urls, 0)
        # Until when each unavailable server is (the clock's time); tried again after.
        self._dead_until: dict[str, Optional[float]] = dict.fromkeys(urls)

    # -- where calls go ------------------------------------------------------------------

    def plan(self, plan: Plan) -> Dispatch:
        if isinstance(plan, Everywhere):
            urls = self.urls
            return Dispatch(
                [Request(url, plan.call) for url in urls],
                lambda results: plan.merge(list(zip(urls, results))),
            )
        if isinstance(plan, Call):
            call = plan
            if call.verb is None:
                return Dispatch([], lambda results: call.result(0, b""))
            if call.verb == "keys" and len(self.urls) > 1:
                return self._scan(call)
            return Dispatch([Request(self._server_of(call), call)], _only)
        groups: dict[str, list] = {}
        for item in plan.items:
            url = self.urls[0] if len(self.urls) == 1 else self.server_for(plan.key_of(item))
            groups.setdefault(url, []).append(item)
        parts = list(groups.items())
        return Dispatch(
            [Request(url, plan.build(items)) for url, items in parts],
            lambda results: plan.merge(
                [(items, result) for (_, items), result in zip(parts, results)]
            ),
        )

    def server_for(self, key: str) -> str:
        """The server that holds `key` (with remap_dead, among the available ones)."""
        urls = self.urls
        if self.remap_dead:
            urls = [url for url in urls if self.refusal(url) is None] or urls
        return server_for(key, urls)

    def _server_of(self, call: Call) -> str:
        if len(self.urls) == 1:
            return self.urls[0]
        if call.key is None:
            raise ValueError(f"/{call.verb} names no key: it goes to no one of several servers")
        return self.server_for(call.key)

    def _scan(self, call: Call) -> Dispatch:
        """A /keys page over several servers, one after the other: the cursor is
        `<server index>.<that server's cursor>`, and empty once the last one is done."""
        assert isinstance(call.fields, dict)
        cursor = str(call.fields.get("cursor") or "")
        index_text, _, inner = cursor.partition(".")
        if cursor and not (index_text.isdigit() and int(index_text) < len(self.urls)):
            raise ValueError(f"not a cursor of this client's servers: {cursor[:40]!r}")
        index = int(index_text) if cursor else 0
        request = Request(self.urls[index], call._replace(fields={**call.fields, "cursor": inner}))

        def outer_cursor(results: list[Any]) -> tuple[list[str], str]:
            keys, next_cursor = results[0]
            if next_cursor:
                return keys, f"{index}.{next_cursor}"
            return keys, f"{index + 1}." if index + 1 < len(self.urls) else ""

        return Dispatch([request], outer_cursor)

    # -- which servers are unavailable ---------------------------------------------------

    def refusal(self, url: str) -> Optional[MemflaskConnectionError]:
        """The error for a call to `url` while it is unavailable; None when it may be tried."""
        until = self._dead_until[url]
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            return None  # its time is up: the next call tries it
        message = f"{url} failed to answer; not tried for {left:.1f} more s"
        return MemflaskConnectionError(0, "server_unavailable", message)

    def answered(self, url: str) -> None:
        if self._failures[url] or self._dead_until[url] is not None:
            with self._lock:
                self._failures[url], self._dead_until[url] = 0, None

    def failed(self, url: str) -> None:
        """Count a call `url` did not answer; mark it unavailable when that is too many."""
        if len(self.urls) == 1:
            return
        with self._lock:
            self._failures[url] += 1
            tried_again = self._dead_until[url] is not None
            if tried_again or self._failures[url] >= self.dead_after:
                self._failures[url] = 0
                self._dead_until[url] = self._clock() + self.dead_timeout

    def unanswered(self, call: Call, error: MemflaskConnectionError) -> Any:
        """A call's result when its server gave no answer: its miss, if unavailable servers
        are ignored and it has one; else the error is raised."""
        if self.ignore_unavailable and call.missing is not UNANSWERED:
            return call.missing
        raise error


def _only(results: list[Any]) -> Any:
    return results[0]
