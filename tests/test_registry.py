"""The registry: one class registers a verb, duplicates are refused, each app has its own copy."""

from __future__ import annotations

from typing import Optional

import pytest

from memflask import create_app
from memflask.commands.base import Command, NotFound, Params, Result, WriteArgs, WriteCommand
from memflask.registry import Registry, default_registry
from memflask.store import DELETE, Item, Store

ORIGINAL_VERBS = [
    "append",
    "checkandset",
    "decrement",
    "delete",
    "flush",
    "get",
    "increment",
    "prepend",
    "set",
    "stats",
]
ADDED_VERBS = ["add", "batch", "gat", "mget", "replace", "touch", "ttl"]


def test_default_registry_holds_every_verb():
    assert sorted(default_registry) == sorted(ORIGINAL_VERBS + ADDED_VERBS)


def test_register_refuses_a_duplicate_verb():
    registry = Registry()

    @registry.register
    class First(Command):
        name = "thing"

    with pytest.raises(ValueError, match="already registered"):

        @registry.register
        class Second(Command):
            name = "thing"

    assert registry.get("thing") is First


def test_register_refuses_a_nameless_command():
    with pytest.raises(ValueError, match="needs a verb name"):
        Registry().register(Command)


def test_get_unknown_is_none():
    assert Registry().get("nope") is None


def test_a_new_verb_is_one_class_and_does_not_leak_between_apps(clock):
    """Adding /getdel takes one class; registering it on one app leaves other apps alone."""

    class GetDelete(WriteCommand):
        name = "getdel"
        needs_value = False
        takes_expiry = False

        def apply(self, store: Store, args: WriteArgs) -> Result:
            seen = []

            def take(current: Optional[Item], now: float):
                seen.append(current)
                return DELETE

            store.update(args.key, take)
            if seen[0] is None:
                raise NotFound("no such key")
            return Result(200, value=seen[0].value)

    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    app.extensions["memflask"].context.registry.register(GetDelete)
    client = app.test_client()
    client.get("/set?key=k&value=v")
    response = client.get("/getdel?key=k")
    assert response.status_code == 200
    assert response.data == b"v"
    assert client.get("/get?key=k").status_code == 404
    assert client.head("/getdel?key=k").status_code == 405  # a write: HEAD refused

    other = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    assert other.get("/getdel?key=k").status_code == 404
    assert other.get("/getdel?key=k").json["error"] == "unknown_verb"
    assert "getdel" not in default_registry


def test_two_apps_never_share_a_cache(clock):
    first = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    second = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    first.get("/set?key=k&value=v")
    assert second.get("/get?key=k").status_code == 404
    assert second.get("/stats").json["commands"] == {"get": 1, "stats": 1}


def test_commands_run_without_flask(clock):
    """The command layer knows nothing of Flask: run a verb on a bare store."""
    from memflask.commands.base import CommandCounts, Context, run
    from memflask.store import MemoryStore

    store = MemoryStore(clock=clock)
    context = Context(default_registry, CommandCounts())
    set_command = default_registry.get("set")
    result = run(set_command, store, Params({"key": ["k"], "value": ["v"]}, context))
    assert result.status == 204
    assert store.get("k").value == "v"
