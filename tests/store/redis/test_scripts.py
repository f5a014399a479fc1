"""The Redis store's one-step verbs: one round trip each, per-key versions, O(1) stats."""

from __future__ import annotations

import uuid
from typing import Optional

import pytest
import redis

from memflask import create_app
from memflask.commands import DEFAULT_COMMANDS
from memflask.commands.storage import Set
from memflask.store import Item


@pytest.fixture
def redis_app(redis_url, clock):
    app = create_app(
        {
            "APP_ENV": "production",
            "STORE_URL": redis_url,
            "STORE_PREFIX": f"lua-{uuid.uuid4().hex}:",
            "CLOCK": clock,
        }
    )
    yield app
    app.extensions["memflask"].store.flush()
    app.extensions["memflask"].store.close()


@pytest.fixture
def spy(redis_url):
    """Counts of the commands Redis ran, per command name, since the last call."""
    connection = redis.Redis.from_url(redis_url)
    connection.config_resetstat()

    def commands_run() -> dict[str, int]:
        stats = connection.info("commandstats")
        connection.config_resetstat()
        return {name[len("cmdstat_") :]: value["calls"] for name, value in stats.items()}

    yield commands_run
    connection.close()


VERB_QUERIES = [
    "/set?key=k&value=1",
    "/add?key=fresh&value=1",
    "/replace?key=k&value=2",
    "/checkandset?key=k&value=3&compare=2",
    "/increment?key=k&value=4",
    "/decrement?key=k&value=1",
    "/append?key=k&value=0",
    "/prepend?key=k&value=1",
    "/touch?key=k&ttl=60",
    "/gat?key=k&ttl=60",
    "/get?key=k",
    "/delete?key=k",
    "/get?key=gone",
]


def test_every_verb_is_one_round_trip_running_one_script(redis_app, spy, monkeypatch):
    client = redis_app.test_client()
    store = redis_app.extensions["memflask"].store
    sent: list[str] = []
    execute_command = store.client.execute_command

    def counting(*args, **options):
        sent.append(str(args[0]))
        return execute_command(*args, **options)

    monkeypatch.setattr(store.client, "execute_command", counting)
    spy()
    for query in VERB_QUERIES:
        response = client.get(query)
        assert response.status_code < 300 or query == "/get?key=gone", (query, response.data)
        round_trips = [name for name in sent if name != "SCRIPT LOAD"]  # once per script
        assert round_trips == ["EVALSHA"], (query, sent)
        sent.clear()
        commands = spy()
        assert commands["evalsha"] == 1, (query, commands)
        assert not {"watch", "multi", "exec", "incr"} & set(commands), (query, commands)


def test_stats_and_metrics_never_scan(redis_app, spy):
    client = redis_app.test_client()
    client.post("/batch", json=[{"verb": "set", "key": f"k{n}", "value": "v"} for n in range(50)])
    spy()
    assert client.get("/stats").json["keyCount"] == 50
    assert "memflask_items 50.0" in client.get("/metrics").data.decode()
    commands = spy()
    assert "scan" not in commands and "keys" not in commands, commands


def test_a_refused_write_changes_nothing_and_answers_as_the_memory_store(redis_app):
    client = redis_app.test_client()
    client.get("/set?key=n&value=9223372036854775807")
    tag = client.get("/get?key=n").headers["ETag"]
    response = client.get("/increment?key=n&value=1")
    assert response.status_code == 400
    assert response.json == {
        "error": "overflow",
        "message": "the result 9223372036854775808 is outside the signed 64-bit range; "
        "nothing changed",
    }
    assert client.get("/get?key=n").headers["ETag"] == tag
    assert client.get("/decrement?key=n&value=-9223372036854775808").json["error"] == "overflow"
    client.get("/set?key=n&value=-1")
    assert client.get("/decrement?key=n&value=-9223372036854775808").status_code == 204
    assert client.get("/get?key=n").data == b"9223372036854775807"
    client.get("/set?key=n&value=%2B007")
    assert client.get("/increment?key=n&value=1").status_code == 204
    assert client.get("/get?key=n").data == b"8"


def test_versions_never_repeat_for_a_key_deleted_and_written_again(redis_app):
    client = redis_app.test_client()
    seen = []
    for _ in range(5):
        client.get("/set?key=k&value=v")
        seen.append(client.get("/get?key=k").headers["ETag"])
        client.get("/delete?key=k")
        client.get("/flush")
    assert len(set(seen)) == len(seen)
    assert [int(tag.strip('"')) for tag in seen] == sorted(int(tag.strip('"')) for tag in seen)


def test_key_count_follows_expiry_reclaim_and_delete(redis_app, clock):
    client = redis_app.test_client()
    for number in range(10):
        client.get(f"/set?key=e{number}&value=v&ttl=10")
    client.get("/set?key=forever&value=v")
    assert client.get("/stats").json["keyCount"] == 11
    clock.tick(10)
    stats = client.get("/stats").json
    assert (stats["keyCount"], stats["expired"]) == (1, 10)
    client.get("/set?key=other&value=v")  # a write reclaims a few expired items on its way
    client.get("/get?key=e3")  # a miss, reclaimed if not yet
    stats = client.get("/stats").json
    assert (stats["keyCount"], stats["expired"], stats["misses"]) == (2, 10, 1)
    client.get("/delete?key=forever")
    assert client.get("/stats").json["keyCount"] == 1


class Shout(Set):
    """Store the value in capitals (a plugin verb: its change runs in Python)."""

    name = "shout"

    def change(self, current: Optional[Item], now: float, args) -> Item:
        return Item(args.value.upper(), args.expiry.resolve(now))


def test_a_plugin_verb_without_a_description_runs_its_change_under_watch(redis_url, spy):
    app = create_app(
        {"APP_ENV": "production", "STORE_URL": redis_url, "STORE_PREFIX": f"p-{uuid.uuid4()}:"},
        commands=(*DEFAULT_COMMANDS, Shout),
    )
    client = app.test_client()
    spy()
    assert client.get("/shout?key=k&value=hey").status_code == 204
    assert "exec" in spy()
    assert client.get("/get?key=k").data == b"HEY"
    assert client.get("/stats").json["keyCount"] == 1
    assert client.get("/delete?key=k").status_code == 204
    assert client.get("/stats").json["keyCount"] == 0
    app.extensions["memflask"].store.close()
