"""How the Redis store talks to Redis: bounded waits, no resent writes, a circuit breaker.

Every wait is bounded by the store's timeout: a command's answer, a new connection, and
a free connection from the pool (BlockingConnectionPool). redis-py's own retries are off:
its default re-sends a command, EXEC included, up to 3 times with back-off sleeps of
seconds, which both delays the 503 and can apply a write twice. After Redis failed to
answer, the breaker fails calls at once for one timeout's length, then lets a single
call probe, so requests queued behind workers blocked on a stopped Redis get their 503
quickly, and service resumes by itself when Redis answers again.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    ConnectionError,
    RedisClusterException,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from ..base import StoreUnavailable, WriteOutcomeUnknown
from .scripts import MAX_REDIS_TTL_MS

if TYPE_CHECKING:
    from redis.client import Pipeline


T = TypeVar("T")

# Connections one process may hold; a caller waits at most the timeout for a free one.
MAX_CONNECTIONS = 64
# Errors that mean Redis did not answer: down, stopped, too slow, no free connection.
UNREACHABLE = (ConnectionError, TimeoutError, OSError)
# A Redis Cluster refusing a command it did not run (no node serves the slot during a
# failover, too many redirections, a slot that moved under a transaction sent to one
# node): nothing was done.
CLUSTER_REFUSALS = (ClusterError, RedisClusterException, TryAgainError, AskError)
# STORE_URL of a Redis Cluster: redis+cluster://host:port[,host:port...] (any nodes).
CLUSTER_SCHEME = "redis+cluster://"


def connect(url: str, timeout: float) -> Any:
    """A client on `url` (a Redis, or a Redis Cluster) whose every wait is bounded by
    `timeout` and that never re-sends a command."""
    if url.startswith(CLUSTER_SCHEME):
        return connect_cluster(url, timeout)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,  # the wait for a free connection
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        # No CLIENT SETINFO on connect: one round trip less, and one wait less when a
        # stopped Redis still accepts connections (the kernel completes the handshake).
        lib_name=None,
        lib_version=None,
    )
    return redis.Redis(connection_pool=pool)


def connect_cluster(url: str, timeout: float) -> RedisCluster:
    """A Redis Cluster client on the nodes `url` lists. It follows MOVED and ASK (the
    command did not run there) but never re-sends after a lost answer; after one it
    reloads the slot map, so requests resume once a replica has taken over."""
    addresses = url[len(CLUSTER_SCHEME) :].split("/", 1)[0].split(",")
    nodes = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host.strip("[]") or "127.0.0.1", int(port or 6379)))
    return RedisCluster(
        startup_nodes=nodes,
        retry=Retry(NoBackoff(), 0),
        # During a failover the other slots keep being served.
        require_full_coverage=False,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # The wait for a free connection to a node, bounded as for one Redis.
        connection_pool_class=functools.partial(redis.BlockingConnectionPool, timeout=timeout),
        max_connections=MAX_CONNECTIONS,
        lib_name=None,
        lib_version=None,
    )


def abandon(pipe: Pipeline) -> None:
    """Drop a pipeline's connection after Redis did not answer, so that leaving the
    pipeline does not wait again on an UNWATCH (its reset() would reconnect to send one,
    and a timeout there would replace the error being raised)."""
    if pipe.connection is not None:
        pipe.connection.disconnect()
    pipe.watching = False


class Breaker:
    """A circuit breaker: after Redis failed to answer, calls fail at once for `pause`
    seconds, then a single call probes while the others keep failing fast.

    Without it, every request queued behind workers blocked on a stopped Redis waits out
    its own timeout in turn (answers of 4 s with a 1 s timeout); with it a request waits
    about one timeout at most, however many are queued.
    """

    def __init__(self, pause: float):
        self.pause = pause
        self._lock = threading.Lock()
        self._open_until: Optional[float] = None  # time.monotonic(); None: closed
        self._probing = False

    def enter(self) -> None:
        """Let a call through, or raise StoreUnavailable while the breaker is open."""
        if self._open_until is None:  # closed, the common case: no lock taken
            return
        with self._lock:
            if self._open_until is None:
                return
            if self._probing or time.monotonic() < self._open_until:
                raise StoreUnavailable("redis did not answer lately; not tried")
            self._probing = True  # this call probes; the others fail fast meanwhile

    def answered(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until, self._probing = None, False

    def failed(self) -> None:
        with self._lock:
            self._open_until, self._probing = time.monotonic() + self.pause, False


class Guarded(Protocol):
    """What `guarded` needs of a store: its breaker."""

    breaker: Breaker


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a store method through the store's breaker, turning Redis being down or slow
    into StoreUnavailable (answered 503)."""

    @functools.wraps(method)
    def wrapper(self: Guarded, *args: Any, **kwargs: Any) -> T:
        self.breaker.enter()
        try:
            result = method(self, *args, **kwargs)
        except UNREACHABLE as error:
            # Only an unreachable or slow Redis: anything else is a bug, and must show.
            self.breaker.failed()
            raise StoreUnavailable(f"redis: {error}") from error
        except CLUSTER_REFUSALS as error:
            raise StoreUnavailable(f"redis cluster: {error}") from error
        except StoreUnavailable:  # WriteOutcomeUnknown included
            self.breaker.failed()
            raise
        except BaseException:
            self.breaker.answered()  # a refusal from a change function: Redis answered
            raise
        self.breaker.answered()
        return result

    return wrapper


def outcome_unknown(error: BaseException) -> WriteOutcomeUnknown:
    """The error for a write sent to Redis whose answer never came: it may have applied."""
    return WriteOutcomeUnknown(f"redis did not answer the write in time: {error}")


def redis_ttl_ms(expires_at: Optional[float], now: float) -> Optional[int]:
    """The Redis TTL for an item expiring at `expires_at` (None: none, or too far off)."""
    if expires_at is None:
        return None
    ttl_ms = max(1, int((expires_at - now) * 1000))
    return ttl_ms if ttl_ms <= MAX_REDIS_TTL_MS else None
