"""The Redis store backend: every memflask process on one Redis sees one cache.

Each verb is one atomic Lua script on the server (memflask/store/redis/scripts.py, which also
describes the key layout): the read, the request's conditions, the verb's rules, the
write and the namespace's counters in one round trip, with no WATCH and no shared
counter key, so it also runs on Redis Cluster (a shard's keys share one hash tag).
Scripts are loaded once and called by SHA (loaded again on NOSCRIPT, which means the
script did not run). Expiry is judged by the store's clock, as in the memory store; an
item also gets a Redis TTL so Redis reclaims it.

A verb without a server-side description (a plugin's) runs its Python change function
inside WATCH/MULTI, retried when another writer changed the key in between
(watched.py). No write is ever sent twice: one whose answer did not come raises
WriteOutcomeUnknown (503, the outcome unknown). Every wait is bounded, and calls fail
fast for a while after Redis failed to answer (connection.py). The names of the keys
and how an item is read from them are layout.py's; flush, prefix deletion, /keys and
stats are keyspace.py's.

SIZE and MAX_BYTES are not enforced here: Redis's own `maxmemory` with the
`allkeys-lru` policy is the LRU (see README, "Backends").
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Optional

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from ..base import (
    LEASE_NOT_HELD,
    ChangeFunction,
    Clock,
    Item,
    LeaseNotHeld,
    ServerChange,
    Store,
    StoreUnavailable,
)
from ..scans import CursorSeal
from .connection import (
    CLUSTER_SCHEME,
    UNREACHABLE,
    Breaker,
    connect,
    guarded,
    outcome_unknown,
)
from .keyspace import Keyspace
from .layout import FIELDS, SHARDS, ItemLayout, on_host_clock, text_of
from .leases import INVALIDATE_SCRIPT, LEASE_READ_SCRIPT, RedisLeases
from .scripts import (
    READ_SCRIPT,
    REMOVE_SCRIPT,
    STATS_SCRIPT,
    WRITE_SCRIPTS,
    Scripts,
    ShardRead,
    script_amounts,
    script_tags,
)
from .watched import WatchedUpdates

# A stats script call on one shard, as a number of keys examined in a /batch's budget:
# a round trip's work (EVALSHA, HMGET, ZCOUNT) is worth tens of keys' HMGETs in a scan.
STATS_SHARD_EXAMINES = 64


class RedisStore(ItemLayout, Keyspace, RedisLeases, WatchedUpdates, Store):
    """The Store interface on a Redis server (redis-py)."""

    # What one stats() costs in a /batch's work budget (memflask/commands/server.py):
    # a script call on each shard, each taken as examining this many keys.
    STATS_EXAMINES = SHARDS * STATS_SHARD_EXAMINES
    eviction = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "memflask:",
        timeout: float = 1.0,
        clock: Optional[Callable[[], float]] = None,
    ):
        self.clock = clock if clock is not None else Clock()
        # Whose clock decides expiry: Redis's (None), the one clock every memflask host on
        # this Redis shares, or a test clock's stand-in for it (see Clock.server_time).
        self._server_time: Callable[[], Optional[float]] = getattr(
            self.clock, "server_time", self.clock
        )
        self.prefix = prefix
        if url.startswith(CLUSTER_SCHEME) and ("{" in prefix or "}" in prefix):
            # A hash tag in the prefix would override the shards' and put every key in
            # one slot, or, an empty one, scatter a shard's keys over several.
            raise ValueError(f"STORE_PREFIX must not contain '{{' or '}}' on a cluster: {prefix!r}")
        self.breaker = Breaker(pause=timeout)
        self.client = connect(url, timeout)
        self._seal: Optional[CursorSeal] = None  # read from Redis at the first scan
        self.scripts = Scripts(
            self.client,
            {
                **WRITE_SCRIPTS,
                "read": READ_SCRIPT,
                "lease_read": LEASE_READ_SCRIPT,
                "invalidate": INVALIDATE_SCRIPT,
                "remove": REMOVE_SCRIPT,
                "stats": STATS_SCRIPT,
            },
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RedisStore:
        return cls(
            settings["STORE_URL"],
            prefix=settings["STORE_PREFIX"],
            timeout=settings["STORE_TIMEOUT_MS"] / 1000,
            clock=settings["CLOCK"],
        )

    # -- reads ---------------------------------------------------------------------------

    @guarded
    def get(self, key: str) -> Optional[Item]:
        shard = self._shard(key)
        now = self._now_argument()
        answer = self._read_answers([ShardRead(shard, [key])], now)[0]
        return self._found([key], answer, now).get(key)

    @guarded
    def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        keys = list(keys)
        now = self._now_argument()
        reads = [ShardRead(shard, found) for shard, found in self._by_shard(keys).items()]
        found: dict[str, Item] = {}
        for read, answer in zip(reads, self._read_answers(reads, now)):
            found.update(self._found(read.keys, answer, now))
        return {key: found[key] for key in keys if key in found}

    @guarded
    def get_many_within(self, keys: Iterable[str], room: int) -> Optional[dict[str, Item]]:
        """get_many, or None if the hits take more than `room` bytes, each its key's and
        value's UTF-8 bytes plus 6: the least JSON of `"key":"value",` in an /mget's answer.

        The scripts sum the sizes and send the values only within the room, so no more
        than about `room` bytes of values comes back: one round trip (a pipeline), or two
        when a few shards' hits are larger than their even share of the room. Each key is
        counted once as a hit or a miss, fitting or not.
        """
        keys = list(keys)
        now = self._now_argument()
        by_shard = self._by_shard(keys)
        share = room // max(1, len(by_shard))
        reads = [ShardRead(shard, found, share) for shard, found in by_shard.items()]
        answers = self._read_answers(reads, now)
        used = sum(int(answer[-2]) for answer in answers)
        if used > room:
            return None
        found: dict[str, Item] = {}
        larger = []  # the shards past their share: read again, their sizes known to fit
        for read, answer in zip(reads, answers):
            if answer[-1] == b"values":
                found.update(self._found(read.keys, answer, now))
            else:
                own_room = room - used + int(answer[-2])
                larger.append(ShardRead(read.shard, read.keys, own_room, counted=False))
        for read, answer in zip(larger, self._read_answers(larger, now)):
            if answer[-1] != b"values":  # grown since past the room
                return None
            found.update(self._found(read.keys, answer, now))
        return {key: found[key] for key in keys if key in found}

    def _by_shard(self, keys: list[str]) -> dict[str, list[str]]:
        by_shard: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_shard[self._shard(key)].append(key)
        return by_shard

    def _read_answers(self, reads: list[ShardRead], now: tuple[str, float]) -> list[list]:
        """The read script's answer for each shard's read: one call, or one round trip
        for many (a pipeline of one script call per shard)."""
        calls = [
            (
                [*self._shard_keys(read.shard), *[f"{read.shard}item:{key}" for key in read.keys]],
                [
                    now[0],
                    f"{read.shard}item:",
                    "" if read.room is None else read.room,
                    "1" if read.counted else "0",
                    *read.keys,
                ],
            )
            for read in reads
        ]
        if len(calls) <= 1:
            return [self.scripts.call("read", *call) for call in calls]
        answers: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _ in range(2):  # once more for the shards whose call met NOSCRIPT
            retry = []
            for index, answer in zip(pending, self._call_many("read", [calls[i] for i in pending])):
                if isinstance(answer, NoScriptError):
                    retry.append(index)  # not run: nothing counted yet
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    answers[index] = answer
            if not retry:
                return answers
            self.scripts.shas.pop("read", None)
            pending = retry
        raise StoreUnavailable("redis kept answering NOSCRIPT")

    def _call_many(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Call a script once per (keys, args), pipelined: one round trip (one per node on
        a cluster, whose own pipelines refuse scripts). Errors come back as answers."""
        sha = self.scripts.sha(script)
        if not isinstance(self.client, RedisCluster):
            pipes = {"": (self.client.pipeline(transaction=False), list(range(len(calls))))}
        else:
            pipes = {}
            for index, (keys, _) in enumerate(calls):
                node = self.client.get_node_from_key(keys[0])
                if node.name not in pipes:
                    node_client = self.client.get_redis_connection(node)
                    pipes[node.name] = (node_client.pipeline(transaction=False), [])
                pipes[node.name][1].append(index)
        answers: list[Any] = [None] * len(calls)
        for pipe, indexes in pipes.values():
            for index in indexes:
                keys, args = calls[index]
                pipe.evalsha(sha, len(keys), *keys, *args)
            for index, answer in zip(indexes, pipe.execute(raise_on_error=False)):
                answers[index] = answer
        return answers

    def _found(self, keys: list[str], answer: list, now: tuple[str, float]) -> dict[str, Item]:
        found = {}
        server_now = float(answer[-3])  # the script's
        for index, key in enumerate(keys):
            item = self._item(answer[3 * index : 3 * index + 3], server_now, now[1])
            if item is not None:
                found[key] = item
        return found

    @guarded
    def peek(self, key: str) -> Optional[Item]:
        name = self._key(key)
        host_now = self.clock()
        server_now = self._server_now(self._client_for(name))
        return self._item(self.client.hmget(name, FIELDS), server_now, host_now)

    # -- writes --------------------------------------------------------------------------

    def write(
        self,
        key: str,
        change: ChangeFunction,
        server_change: Optional[ServerChange] = None,
        *,
        read: bool = False,
        lease: str = "",
        stale: Optional[int] = None,
    ) -> Optional[Item]:
        if server_change is None:  # a plugin verb: its change function, under WATCH
            if lease:
                raise LeaseNotHeld("this verb cannot write under a lease on Redis")
            return self.update(key, change, read=read)
        return self._run_script(key, change, server_change, read, lease, stale)

    @guarded
    def _run_script(
        self,
        key: str,
        change: ChangeFunction,
        server_change: ServerChange,
        read: bool,
        lease: str,
        stale: Optional[int],
    ) -> Optional[Item]:
        now_argument, now = self._now_argument()
        shard = self._shard(key)
        if server_change.expiry is None or (
            server_change.keeps_expiry and not server_change.expiry.given
        ):
            expiry = "keep"
        elif server_change.expiry.ttl:
            expiry = f"ttl:{server_change.expiry.ttl}"  # from now by the script's clock
        else:
            expires_at = server_change.expiry.resolve(now)
            expiry = "" if expires_at is None else repr(expires_at)
        if server_change.kind == "count":
            extra = script_amounts(server_change.amount)
        elif server_change.kind == "checkandset":
            extra = [server_change.compare]
        else:
            extra = [server_change.max_value_bytes]
        args = [
            now_argument,
            f"{shard}item:",
            key,
            "1" if read else "0",
            script_tags(server_change.if_match),
            script_tags(server_change.if_none_match),
            expiry,
            lease,
            "" if stale is None else stale,
            server_change.value,
            *extra,
        ]
        keys = [*self._shard_keys(shard), f"{shard}item:{key}"]
        try:
            outcome, value, version, expires, present, server_now = self.scripts.call(
                server_change.kind, keys, args
            )
        except UNREACHABLE as error:
            raise outcome_unknown(error) from error
        if outcome == b"deleted":
            return None
        if outcome == b"lease":
            raise LeaseNotHeld(LEASE_NOT_HELD)
        expires_at = float(expires) if expires else None
        if expires_at is not None:
            expires_at = on_host_clock(expires_at, float(server_now), now)
        item = Item(text_of(value), expires_at)
        item.version = int(version)
        if outcome == b"stored":
            return item
        # Refused: the verb's own change function names the refusal, as on the memory store.
        change(item if present == b"1" else None, now)
        raise RuntimeError(f"redis refused a {server_change.kind} that the change function allows")

    def _client_for(self, name: str) -> Any:
        """The client of the node serving `name`: a cluster's own pipelines have no WATCH,
        so a transaction on one key goes to its node directly (a slot moving meanwhile
        is a 503, nothing done)."""
        if not isinstance(self.client, RedisCluster):
            return self.client
        return self.client.get_redis_connection(self.client.get_node_from_key(name))

    def close(self) -> None:
        self.client.close()
