"""The Redis store on a real Redis Cluster started by the tests (tests/harness/clusters.py): every
verb, namespace-wide operations, pauses and failover. The contract suite also runs on a
cluster (tests/contract/conftest.py, CONTRACT_SERVING).
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
import uuid
from collections import Counter
from contextlib import suppress
from typing import Iterator

import pytest
import redis

from memflask import create_app
from memflask.commands import DEFAULT_COMMANDS
from memflask.store.redis.store import RedisStore
from tests.harness.clusters import Cluster, cluster, wait_for
from tests.harness.servers import LiveServer
from tests.store.redis.test_outages import Tally, increment_until
from tests.store.redis.test_scripts import Shout


@pytest.fixture(scope="module")
def three_masters(tmp_path_factory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas=0) as started:
        yield started


def app_on(url: str, clock=None, timeout: float = 1.0):
    store = RedisStore(url, prefix=f"c-{uuid.uuid4().hex}:", timeout=timeout, clock=clock)
    return create_app({"APP_ENV": "production", "TESTING": True}, store=store), store


def test_every_verb_answers_on_a_cluster_as_on_one_redis(three_masters, clock):
    app, store = app_on(three_masters.url, clock)
    client = app.test_client()
    try:
        keys = [f"key-{number}" for number in range(60)]
        batch = [{"verb": "set", "key": key, "value": key} for key in keys]
        assert client.post("/batch", json=batch).status_code == 200
        per_master = [three_masters.ask(port, "DBSIZE") for port in three_masters.masters()]
        assert len(per_master) == 3 and all(size > 0 for size in per_master), per_master
        assert client.get("/mget", query_string={"key": [*keys, "absent"]}).json == {
            key: key for key in keys
        }
        assert client.get("/increment?key=n&value=5").status_code == 204
        assert client.get("/decrement?key=n&value=2").status_code == 204
        assert client.get("/append?key=n&value=0").status_code == 204
        assert client.get("/get?key=n").data == b"30"
        tag = client.get("/get?key=n").headers["ETag"]
        assert client.get("/set?key=n&value=x", headers={"If-Match": '"1"'}).status_code == 412
        assert client.get("/set?key=n&value=y", headers={"If-Match": tag}).status_code == 204
        assert client.get("/add?key=n&value=z").status_code == 409
        assert client.get("/replace?key=none&value=z").status_code == 404
        assert client.get("/checkandset?key=n&value=w&compare=y").status_code == 204
        assert client.get("/touch?key=n&ttl=10").status_code == 204
        assert client.get("/gat?key=n&ttl=20").data == b"w"
        assert client.get("/ttl?key=n").json == {"key": "n", "ttl": 20}
        clock.tick(20)
        assert client.get("/get?key=n").status_code == 404
        stats = client.get("/stats").json
        assert stats["keyCount"] == 60
        assert (stats["hits"], stats["misses"]) == (60 + 3, 2)  # mget, get x2, gat; 2 misses
        assert client.get("/flush?prefix=key-1").json == {"flushed": 11}
        assert client.get("/stats").json["keyCount"] == 49
        assert client.get("/flush").status_code == 204
        assert client.get("/stats").json["keyCount"] == 0
    finally:
        store.close()


@pytest.mark.skipif(
    "TOX_ENV_NAME" in os.environ,
    reason="run once per CI, in the README's test command: six clusters of six nodes failing "
    "over under the tox matrix's load made one run in a few miss its replica's keys",
)
def test_a_master_killed_its_replica_takes_over_and_no_replicated_write_is_lost(tmp_path):
    with cluster(tmp_path, masters=3, replicas=1) as started:
        app, store = app_on(started.url, timeout=0.5)
        try:
            with LiveServer(app) as server:

                def call(target: str) -> tuple[int, bytes]:
                    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                    try:
                        connection.request("GET", target)
                        response = connection.getresponse()
                        return response.status, response.read()
                    finally:
                        connection.close()

                acknowledged = {}
                for number in range(300):
                    key, value = f"k{number}", f"v{number}"
                    if call(f"/set?key={key}&value={value}")[0] == 204:
                        acknowledged[key] = value
                assert len(acknowledged) == 300

                def replicated() -> bool:
                    """Every replica connected, in sync, and holding its master's writes."""
                    masters = started.masters()
                    if len(masters) != 3:
                        return False
                    for port in started.alive():
                        role = started.ask(port, "ROLE")
                        if role[0] == b"slave" and role[3] != b"connected":
                            return False
                    for port in masters:
                        role = started.ask(port, "ROLE")
                        offset = int(role[1])
                        if not role[2] or any(int(replica[2]) < offset for replica in role[2]):
                            return False
                    return True

                wait_for(replicated, 20, "the replicas did not catch up")

                def keys_on(master: int) -> dict[str, str]:
                    """The acknowledged writes `master` holds (asked directly)."""
                    return {
                        key: value
                        for key, value in acknowledged.items()
                        if _master_value(master, store._key(key)) == value
                    }

                def replica_has(replica: int, written: dict[str, str]) -> dict[str, str]:
                    return {
                        key: value
                        for key, value in written.items()
                        if _replica_value(replica, store._key(key)) == value
                    }

                # The victim: a master whose replica answers reads of every write it holds.
                # Replication is asynchronous, and on a heavily loaded machine one shard's
                # replica was seen reporting its master's offset a while before it served
                # those keys; a master whose replica cannot show them is not killed.
                victim, had, on_victim = 0, {}, {}
                for master in started.masters():
                    follower = int(started.ask(master, "ROLE")[2][0][1])
                    written = keys_on(master)
                    with suppress(AssertionError):  # then the next master
                        wait_for(
                            lambda follower=follower, written=written: (
                                len(replica_has(follower, written)) == len(written)
                            ),
                            10,
                            "replica reads",
                        )
                    held = replica_has(follower, written)
                    if written and len(held) == len(written):
                        victim, had, on_victim = master, held, written
                        break
                assert had, (
                    "no master's replica held its master's keys",
                    {port: started.ask(port, "ROLE") for port in started.alive()},
                    {port: started.ask(port, "DBSIZE") for port in started.alive()},
                )
                probe = next(iter(had))
                started.processes[victim].kill()
                started.processes[victim].wait(timeout=30)
                killed_at = time.monotonic()
                resumed = wait_for(
                    lambda: call(f"/get?key={probe}")[0] == 200, 30, "no recovery after failover"
                )
                print(f"requests resumed {resumed:.1f} s after the master was killed")
                assert time.monotonic() - killed_at < 30
                lost = {
                    key: value
                    for key, value in had.items()
                    if call(f"/get?key={key}") != (200, value.encode())
                }
                assert lost == {}
                print(f"{len(had)} of the {len(on_victim)} keys on the killed master checked")
                assert call("/set?key=after&value=1")[0] == 204
        finally:
            store.close()


def _replica_value(port: int, name: str):
    """An item's value as a replica holds it (READONLY: a replica answers reads)."""
    connection = redis.Redis(port=port, socket_timeout=5, single_connection_client=True)
    try:
        connection.execute_command("READONLY")
        value = connection.hget(name, "v")
        return None if value is None else value.decode()
    finally:
        connection.close()


def _master_value(port: int, name: str):
    """An item's value as the master on `port` holds it; None if that master does not
    serve its slot (asked directly: another node's view of the slots may lag)."""
    connection = redis.Redis(port=port, socket_timeout=5, single_connection_client=True)
    try:
        value = connection.hget(name, "v")
    except redis.exceptions.ResponseError:  # MOVED: another master serves it
        return None
    finally:
        connection.close()
    return None if value is None else value.decode()


def test_a_prefix_with_a_hash_tag_is_refused_on_a_cluster():
    with pytest.raises(ValueError, match="STORE_PREFIX"):
        RedisStore("redis+cluster://127.0.0.1:1", prefix="app{1}:")


def test_a_plugin_verb_runs_its_change_under_watch_on_the_keys_node(three_masters):
    store = RedisStore(three_masters.url, prefix=f"c-{uuid.uuid4().hex}:")
    app = create_app(
        {"APP_ENV": "production", "TESTING": True},
        store=store,
        commands=(*DEFAULT_COMMANDS, Shout),
    )
    client = app.test_client()
    try:
        for number in range(20):  # keys on every master
            assert client.get(f"/shout?key=k{number}&value=hey").status_code == 204
        assert client.get("/get?key=k7").data == b"HEY"
        assert client.get("/stats").json["keyCount"] == 20
    finally:
        store.flush()
        store.close()


def test_keys_lists_every_key_across_the_masters(three_masters):
    app, store = app_on(three_masters.url)
    client = app.test_client()
    try:
        keys = {f"user:{number}" for number in range(120)} | {"other"}
        batch = [{"verb": "set", "key": key, "value": "v"} for key in keys]
        assert client.post("/batch", json=batch).status_code == 200
        listed, cursor, pages = [], "", 0
        while True:
            answer = client.get("/keys", query_string={"prefix": "user:", "cursor": cursor})
            assert answer.status_code == 200, answer.json
            listed += answer.json["keys"]
            cursor, pages = answer.json["cursor"], pages + 1
            if not cursor:
                break
            assert pages < 1000
        assert set(listed) == keys - {"other"}
        assert client.get("/keys?cursor=7.0").json["error"] == "invalid_cursor"
    finally:
        store.flush()
        store.close()


def test_a_paused_master_delays_no_answer_past_twice_the_timeout_nor_applies_a_write_twice(
    three_masters,
):
    """8 threads increment unique keys and a shared counter; one master SIGSTOPped 2 s
    (less than cluster-node-timeout: no failover)."""
    timeout = 0.5
    app, store = app_on(three_masters.url, timeout=timeout)
    tally = Tally()
    try:
        with LiveServer(app) as server:
            stop_at = time.monotonic() + 5
            threads = [
                threading.Thread(
                    target=increment_until, args=(server.port, f"t{n}", stop_at, tally)
                )
                for n in range(8)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            paused = three_masters.processes[three_masters.masters()[0]]
            paused.send_signal(signal.SIGSTOP)
            try:
                time.sleep(2)
            finally:
                paused.send_signal(signal.SIGCONT)
            for thread in threads:
                thread.join(60)
            assert not any(thread.is_alive() for thread in threads)
        client = app.test_client()
        wait_for(lambda: client.get("/get?key=shared").status_code == 200, 10, "no recovery")
        unique, shared = tally.unique, tally.shared
        values = {}
        keys = list(unique)
        for start in range(0, len(keys), 500):
            values.update(client.get("/mget", query_string={"key": keys[start : start + 500]}).json)
        counter = int(client.get("/get?key=shared").data)
    finally:
        store.flush()
        store.close()
    print(f"unique: {sorted(Counter(unique.values()).items())}, shared: {shared} -> {counter}")
    print(f"slowest answer {tally.slowest:.3f} s (timeout {timeout} s)")
    assert set(unique.values()) <= {204, 503} and 503 in unique.values()
    for key, status in unique.items():
        expected = ("1",) if status == 204 else (None, "1")  # 503: applied once or never
        assert values.get(key) in expected, key
    assert shared.get(204, 0) <= counter <= shared.get(204, 0) + shared.get(503, 0)
    assert tally.slowest < 2 * timeout + 0.5


def test_store_url_names_a_cluster(three_masters, clock):
    """MEMFLASK_STORE_URL=redis+cluster://host:port,... is all a deployment sets."""
    app = create_app(
        {
            "APP_ENV": "production",
            "STORE_URL": three_masters.url,
            "STORE_PREFIX": "by-url:",
            "CLOCK": clock,
        }
    )
    client = app.test_client()
    assert client.get("/set?key=k&value=v").status_code == 204
    assert client.get("/get?key=k").data == b"v"
    assert client.get("/flush?prefix=k").json == {"flushed": 1}
