"""The Redis store backend: every memflask process on one Redis sees one cache.

Each verb is one atomic Lua script on the server (memflask/store/redis/scripts.py, which also
describes the key layout): the read, the request's conditions, the verb's rules, the
write and the namespace's counters in one round trip, with no WATCH and no shared
counter key, so it also runs on Redis Cluster (a shard's keys share one hash tag).
Scripts are loaded once and called by SHA (loaded again on NOSCRIPT, which means the
script did not run). Expiry is judged by the store's clock, as in the memory store; an
item also gets a Redis TTL so Redis reclaims it.

A verb without a server-side description (a plugin's) runs its Python change function
inside WATCH/MULTI, retried when another writer changed the key in between. No write is
ever sent twice: one whose answer did not come raises WriteOutcomeUnknown (503, the
outcome unknown). Every wait is bounded, and calls fail fast for a while after Redis
failed to answer (memflask/store/redis/connection.py).

SIZE and MAX_BYTES are not enforced here: Redis's own `maxmemory` with the
`allkeys-lru` policy is the LRU (see README, "Backends").
"""

from __future__ import annotations

import re
import secrets
import zlib
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError, WatchError

from ..base import (
    DELETE,
    ChangeFunction,
    Clock,
    Item,
    ServerChange,
    Store,
    StoreStats,
    StoreUnavailable,
)
from ..scans import MAX_CURSOR_CHARS, CursorSeal, UnknownCursor
from .connection import (
    CLUSTER_SCHEME,
    UNREACHABLE,
    Breaker,
    abandon,
    connect,
    guarded,
    outcome_unknown,
    redis_ttl_ms,
)
from .scripts import READ_SCRIPT, REMOVE_SCRIPT, STATS_SCRIPT, WRITE_SCRIPTS

FIELDS = ("v", "n", "e")
SCAN_BATCH = 1000
# Items are spread over this many shards, each one hash tag (one Cluster slot) holding
# its items, its counters and its expiry index, so a script touches one slot only.
SHARDS = 256
# A stats script call on one shard, as a number of keys examined in a /batch's budget:
# a round trip's work (EVALSHA, HMGET, ZCOUNT) is worth tens of keys' HMGETs in a scan.
STATS_SHARD_EXAMINES = 64
# The namespace's key that holds the secret /keys cursors are sealed with (memflask/store/scans.py):
# one for every memflask host on this Redis, so a scan may go on through any of them.
CURSOR_SECRET_NAME = "cursor-secret"
# Characters that mean something in a SCAN MATCH pattern, escaped in a key prefix.
GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")


def _glob_escape(text: str) -> str:
    return GLOB_SPECIAL.sub(r"\\\g<0>", text)


def _tags(tags: Optional[frozenset[str]]) -> str:
    """Entity tags as a script reads them: '' for no header, else each between newlines."""
    return "" if tags is None else "\n" + "".join(f"{tag}\n" for tag in tags)


def _text(value: Optional[bytes]) -> str:
    return "" if value is None else value.decode("utf-8")


class ShardRead(NamedTuple):
    """One call of the read script: keys of one shard, the byte room of their values
    (None: no bound; see get_many_within), and whether it counts hits and misses."""

    shard: str
    keys: list[str]
    room: Optional[int] = None
    counted: bool = True


class Scripts:
    """The Lua scripts by name, loaded once and then called by their SHA."""

    def __init__(self, client: Any, sources: dict[str, str]):
        self.client = client
        self.sources = sources
        self.shas: dict[str, str] = {}

    def sha(self, name: str) -> str:
        sha = self.shas.get(name)
        if sha is None:
            sha = self.shas[name] = self.client.script_load(self.sources[name])
        return sha

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)
        except NoScriptError:
            # The script did not run (Redis restarted, or a failover): load it and call
            # again, which sends the write once.
            self.shas.pop(name, None)
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)


class RedisStore(Store):
    """The Store interface on a Redis server (redis-py)."""

    # What one stats() costs in a /batch's work budget (memflask/commands/server.py):
    # a script call on each shard, each taken as examining this many keys.
    STATS_EXAMINES = SHARDS * STATS_SHARD_EXAMINES

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
                "remove": REMOVE_SCRIPT,
                "stats": STATS_SCRIPT,
            },
        )

    # -- key layout (memflask/store/redis/scripts.py) ------------------------------------------

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RedisStore:
        return cls(
            settings["STORE_URL"],
            prefix=settings["STORE_PREFIX"],
            timeout=settings["STORE_TIMEOUT_MS"] / 1000,
            clock=settings["CLOCK"],
        )

    def _shard(self, key: str) -> str:
        """The hash-tagged start of the names of `key`'s shard: `<prefix>{<shard>}`."""
        shard = zlib.crc32(key.encode("utf-8", "surrogatepass")) % SHARDS
        return f"{self.prefix}{{{shard}}}"

    def _key(self, key: str) -> str:
        return f"{self._shard(key)}item:{key}"

    def _key_of(self, name: bytes) -> str:
        """The memflask key an item's hash name holds (`<prefix>{<shard>}item:<key>`)."""
        rest = name.decode("utf-8")[len(self.prefix) :]
        return rest[rest.index("}item:") + len("}item:") :]

    def _shard_keys(self, shard: str) -> list[str]:
        """KEYS[1] and KEYS[2] of every script: the shard's stats hash and expiry index."""
        return [f"{shard}stats", f"{shard}expiries"]

    def _item(
        self, fields: Sequence[Any], now: float, host_now: Optional[float] = None
    ) -> Optional[Item]:
        """The live Item in a hash's (v, n, e) fields, or None (absent or expired).

        `now` is the deciding clock's (Redis's); given this host's `host_now`, the Item's
        expiry is told on this host's clock (the same seconds left), as `store.clock()`
        reads it: /ttl then answers the same on every host.
        """
        value, version, expires = fields
        if not version or version in (b"0", "0"):
            return None
        expires_at = float(expires) if expires else None
        if expires_at is not None:
            if expires_at <= now:
                return None
            if host_now is not None:
                expires_at = _on_host_clock(expires_at, now, host_now)
        item = Item(_text(value), expires_at)
        item.version = int(version)
        return item

    def _now_argument(self) -> tuple[str, float]:
        """The scripts' ARGV[1] ('' : Redis's own TIME) and this host's clock now."""
        server_now = self._server_time()
        return ("" if server_now is None else repr(server_now)), self.clock()

    def _server_now(self, client: Any) -> float:
        """Now on the deciding clock: Redis's TIME (a round trip), or a test clock's."""
        server_now = self._server_time()
        if server_now is not None:
            return server_now
        return _microseconds(client.time()) / 1_000_000

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
    ) -> Optional[Item]:
        if server_change is None:  # a plugin verb: its change function, under WATCH
            return self.update(key, change, read=read)
        return self._run_script(key, change, server_change, read)

    @guarded
    def _run_script(
        self, key: str, change: ChangeFunction, server_change: ServerChange, read: bool
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
            extra = _amounts(server_change.amount)
        elif server_change.kind == "checkandset":
            extra = [server_change.compare]
        else:
            extra = [server_change.max_value_bytes]
        args = [
            now_argument,
            f"{shard}item:",
            key,
            "1" if read else "0",
            _tags(server_change.if_match),
            _tags(server_change.if_none_match),
            expiry,
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
        expires_at = float(expires) if expires else None
        if expires_at is not None:
            expires_at = _on_host_clock(expires_at, float(server_now), now)
        item = Item(_text(value), expires_at)
        item.version = int(version)
        if outcome == b"stored":
            return item
        # Refused: the verb's own change function names the refusal, as on the memory store.
        change(item if present == b"1" else None, now)
        raise RuntimeError(f"redis refused a {server_change.kind} that the change function allows")

    @guarded
    def update(self, key: str, change: ChangeFunction, *, read: bool = False) -> Optional[Item]:
        """Run a change function under WATCH/MULTI (for verbs without a description)."""
        shard = self._shard(key)
        name = f"{shard}item:{key}"
        stats_name, expiries_name = self._shard_keys(shard)
        counted = not read
        exec_sent = False
        with self._client_for(name).pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    # Run at once while watching: Redis's TIME stamps the version, as in
                    # the scripts; the deciding clock (Redis's or a test's) judges expiry.
                    redis_time = _microseconds(pipe.time())
                    server_now = self._server_time()
                    now = redis_time / 1_000_000 if server_now is None else server_now
                    fields = pipe.hmget(name, FIELDS)
                    # Held: a hash with a value, or one Redis's TTL removed (still counted).
                    held = fields[0] is not None or pipe.zscore(expiries_name, key) is not None
                    current = self._item(fields, now)
                    if not counted:  # the first read counts, even if `change` refuses
                        self.client.hincrby(stats_name, "hits" if current else "misses", 1)
                        counted = True
                    new = change(current, now)
                    if new is None:
                        pipe.unwatch()
                        break
                    pipe.multi()
                    if held and current is None:
                        pipe.hincrby(stats_name, "expired", 1)
                    pipe.delete(name)
                    pipe.zrem(expiries_name, key)
                    kept = new is not DELETE and (new.expires_at is None or new.expires_at > now)
                    if kept != held:
                        pipe.hincrby(stats_name, "keys", 1 if kept else -1)
                    if new is not DELETE:
                        # Unique per key without a counter, by Redis's clock as the scripts'
                        # versions (see memflask/store/redis/scripts.py), never this host's.
                        version = int(fields[1] or 0)
                        new.version = max(version + 1, redis_time)
                    if kept:
                        expires = "" if new.expires_at is None else repr(new.expires_at)
                        pipe.hset(name, mapping={"v": new.value, "n": new.version, "e": expires})
                        if new.expires_at is not None:
                            pipe.zadd(expiries_name, {key: new.expires_at})
                        ttl_ms = redis_ttl_ms(new.expires_at, now)
                        if ttl_ms is not None:
                            pipe.pexpire(name, ttl_ms)
                    exec_sent = True
                    pipe.execute()
                    break
                except WatchError as error:
                    if isinstance(error.__context__, UNREACHABLE):
                        # redis-py reports a lost connection while watching as a WatchError.
                        abandon(pipe)
                        if exec_sent:  # Redis may still run that EXEC: never send it again
                            raise outcome_unknown(error.__context__) from error
                        raise StoreUnavailable(f"redis: {error.__context__}") from error
                    continue  # another writer changed the key: read it again
                except UNREACHABLE as error:
                    abandon(pipe)
                    if exec_sent:
                        raise outcome_unknown(error) from error
                    raise
        # Told on this host's clock, as a script's answer and a read are.
        host_now = self.clock()
        if new is None:
            return self._on_host(current, now, host_now)
        return None if new is DELETE else self._on_host(new, now, host_now)

    @staticmethod
    def _on_host(item: Optional[Item], server_now: float, host_now: float) -> Optional[Item]:
        """`item` with its expiry told on this host's clock (see _on_host_clock)."""
        if item is None or item.expires_at is None:
            return item
        told = Item(item.value, _on_host_clock(item.expires_at, server_now, host_now))
        told.version = item.version
        return told

    # -- many keys -------------------------------------------------------------------------

    @guarded
    def flush(self) -> None:
        """Remove memflask's keys only (other users of the Redis keep theirs)."""
        self._remove_matching(self._pattern(""))

    @guarded
    def delete_prefix(self, prefix: str) -> int:
        return self._remove_matching(self._pattern(prefix))

    def _remove_matching(self, pattern: str) -> int:
        """Remove the items whose names match, a batch per shard; return how many were live."""
        removed = 0
        batch: dict[str, list[str]] = defaultdict(list)
        for number, name in enumerate(self.client.scan_iter(match=pattern, count=SCAN_BATCH)):
            key = self._key_of(name)
            batch[self._shard(key)].append(key)
            if number % SCAN_BATCH == SCAN_BATCH - 1:
                removed += self._remove(batch)
                batch.clear()
        return removed + self._remove(batch)

    def _remove(self, by_shard: dict[str, list[str]]) -> int:
        now = self._now_argument()[0]
        removed = 0
        for shard, keys in by_shard.items():
            names = [f"{shard}item:{key}" for key in keys]
            removed += self.scripts.call(
                "remove", [*self._shard_keys(shard), *names], [now, f"{shard}item:", *keys]
            )
        return removed

    @guarded
    def scan(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        # Redis starts and ends a scan with cursor 0; memflask's cursors say it empty.
        position = self._open_cursor(prefix, cursor) if cursor else ""
        if isinstance(self.client, RedisCluster):
            live, position = self._scan_cluster(prefix, position, limit)
        else:
            if position and not (position.isdigit() and len(position) <= 20):
                raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again")
            next_cursor, live = self._scan_node(self.client, prefix, int(position or 0), limit)
            position = "" if next_cursor == 0 else str(next_cursor)
        return live, self._cursor_seal().seal(prefix, position) if position else ""

    def _cursor_seal(self, fresh: bool = False) -> CursorSeal:
        """The namespace's cursor seal: its secret made by the first host to scan (SET NX)."""
        if self._seal is None or fresh:
            name = f"{self.prefix}{CURSOR_SECRET_NAME}"
            self.client.set(name, secrets.token_hex(32), nx=True)
            secret = self.client.get(name)
            if secret is None:  # emptied meanwhile: this host's own until the next look
                secret = secrets.token_bytes(32)
            self._seal = CursorSeal(secret)
        return self._seal

    def _open_cursor(self, prefix: str, cursor: str) -> str:
        try:
            return self._cursor_seal().open(prefix, cursor)
        except UnknownCursor:
            if len(cursor) > MAX_CURSOR_CHARS:
                raise
            # Redis may have been emptied, and another host made a new secret: look again.
            return self._cursor_seal(fresh=True).open(prefix, cursor)

    @guarded
    def scan_size(self) -> int:
        """Every key of the database: SCAN examines them all, memflask's or not."""
        return int(self.client.dbsize())

    def _scan_cluster(self, prefix: str, cursor: str, limit: int) -> tuple[list[str], str]:
        """A cluster's scan: each primary in turn, the position `<primary>.<its cursor>`.

        A key present for the whole scan is listed at least once while the cluster's
        primaries stay the same; after a failover or a reshard, start again.
        """
        primaries = sorted(self.client.get_primaries(), key=lambda node: node.name)
        index, position = 0, 0
        if cursor:
            index_text, _, position_text = cursor.partition(".")
            if not (
                cursor.isascii()
                and index_text.isdigit()
                and position_text.isdigit()
                and int(index_text) < len(primaries)
            ):
                raise UnknownCursor(f"unknown cursor {cursor[:40]!r}; start again")
            index, position = int(index_text), int(position_text)
        # A primary scanned to its end goes on to the next while the page has room, so a
        # small namespace lists in one call, as on one Redis; at most one SCAN a primary.
        live: list[str] = []
        while index < len(primaries) and len(live) < limit:
            node_client = self.client.get_redis_connection(primaries[index])
            position, found = self._scan_node(node_client, prefix, position, limit - len(live))
            live.extend(found)
            if position != 0:
                break
            index += 1
        return live, "" if index == len(primaries) else f"{index}.{position}"

    def _scan_node(self, client: Any, prefix: str, cursor: int, limit: int) -> tuple[int, list]:
        """One SCAN step on one Redis: the next cursor, and the live keys it met."""
        try:
            next_cursor, names = client.scan(cursor, match=self._pattern(prefix), count=limit)
        except ResponseError as error:  # a number Redis never gave as a cursor
            raise UnknownCursor(f"unknown cursor {cursor}: {error}; start again") from None
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, FIELDS)
        now = self._server_now(client)  # Redis's clock judges expiry, as in the scripts
        live = [
            self._key_of(name)
            for name, fields in zip(names, pipe.execute())
            if self._item(fields, now) is not None
        ]
        return next_cursor, live

    def _pattern(self, prefix: str) -> str:
        """The SCAN pattern of this namespace's items whose key starts with `prefix`."""
        return f"{_glob_escape(self.prefix)}{{*}}item:{_glob_escape(prefix)}*"

    @guarded
    def stats(self) -> StoreStats:
        """This namespace's counters, kept by the scripts (O(shards), no SCAN), and what
        Redis itself knows of memory and evictions."""
        now = self._now_argument()[0]
        calls: list[tuple[list[str], list[Any]]] = [
            (self._shard_keys(f"{self.prefix}{{{shard}}}"), [now, ""]) for shard in range(SHARDS)
        ]
        for _ in range(2):  # once more after NOSCRIPT (a read: simply asked again)
            answers = self._call_many("stats", calls)
            if not any(isinstance(answer, NoScriptError) for answer in answers):
                break
            self.scripts.shas.pop("stats", None)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        keys, hits, misses, expired = (sum(column) for column in zip(*answers))
        info = self._info()
        return StoreStats(
            keyCount=max(0, keys),
            maxSize=0,
            bytes=info.get("used_memory", 0),
            maxBytes=info.get("maxmemory", 0),
            hits=hits,
            misses=misses,
            evictions=info.get("evicted_keys", 0),
            expired=expired,
        )

    def _client_for(self, name: str) -> Any:
        """The client of the node serving `name`: a cluster's own pipelines have no WATCH,
        so a transaction on one key goes to its node directly (a slot moving meanwhile
        is a 503, nothing done)."""
        if not isinstance(self.client, RedisCluster):
            return self.client
        return self.client.get_redis_connection(self.client.get_node_from_key(name))

    def _info(self) -> dict[str, int]:
        """Redis's memory and eviction figures (summed over a cluster's primaries)."""
        fields = ("used_memory", "maxmemory", "evicted_keys")
        if not isinstance(self.client, RedisCluster):
            info = self.client.info()
            return {field: info.get(field, 0) for field in fields}
        per_node = self.client.info(target_nodes=RedisCluster.PRIMARIES)
        return {field: sum(info.get(field, 0) for info in per_node.values()) for field in fields}

    def close(self) -> None:
        self.client.close()


def _microseconds(redis_time: tuple[int, int]) -> int:
    """Redis's TIME answer (seconds, microseconds) in microseconds."""
    seconds, microseconds = redis_time
    return int(seconds) * 1_000_000 + int(microseconds)


def _on_host_clock(expires_at: float, server_now: float, host_now: float) -> float:
    """An expiry on the deciding clock (Redis's) told on this host's clock: the same
    seconds left, so every answer (a read, a write's, a plugin verb's) agrees on every
    host whatever its clock says, and `store.clock()` reads it."""
    if host_now == server_now:
        return expires_at
    return expires_at - server_now + host_now


def _amounts(amount: int) -> list[int]:
    """`amount` as HINCRBY increments, each within int64 (2**63 is two halves)."""
    return [amount] if amount < 2**63 else [amount // 2, amount - amount // 2]
