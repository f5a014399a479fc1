"""The registry: one class registers a verb, duplicates are refused, each app has its own copy."""

from __future__ import annotations

from typing import Optional

import pytest

from memflask import create_app
from memflask.commands import (
    DEFAULT_COMMANDS,
    TEXT,
    Command,
    CommandCounts,
    Context,
    Key,
    Params,
    Registry,
    Result,
    default_registry,
)
from memflask.commands.storage import Append, Set
from memflask.core.errors import NotFound
from memflask.store import DELETE, Item, Store
from tests.store.redis.test_scripts import Shout

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
ADDED_VERBS = ["add", "batch", "gat", "invalidate", "keys", "mget", "replace", "touch", "ttl"]


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


class GetDelete(Command):
    """Read a value and remove the key, in one step."""

    name = "getdel"
    writes = True
    parameters = (Key(),)
    refusals = (NotFound,)
    answers = {200: TEXT}

    def apply(self, store: Store, args) -> Result:
        seen = []

        def take(current: Optional[Item], now: float):
            seen.append(current)
            return DELETE

        store.update(args.key, take)
        if seen[0] is None:
            raise NotFound("no such key")
        return Result(200, value=seen[0].value)


def test_a_new_verb_is_one_class_and_does_not_leak_between_apps(clock):
    """Adding /getdel takes one class; registering it on one app leaves other apps alone."""
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
    from memflask.commands import CommandCounts, Context, run
    from memflask.store import MemoryStore

    store = MemoryStore(clock=clock)
    context = Context(default_registry, CommandCounts())
    set_command = default_registry.get("set")
    result = run(set_command, store, Params({"key": ["k"], "value": ["v"]}, context))
    assert result.status == 204
    assert store.get("k").value == "v"


def test_a_new_verb_describes_itself_in_the_openapi_document(clock):
    """/getdel's one class is all /openapi.json needs: summary, parameter, answers, refusals."""
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    app.extensions["memflask"].context.registry.register(GetDelete)
    document = app.test_client().get("/openapi.json").json
    operation = document["paths"]["/getdel"]["get"]
    assert operation["summary"] == "Read a value and remove the key, in one step."
    assert [parameter["name"] for parameter in operation["parameters"]] == ["key"]
    assert operation["parameters"][0]["required"] is True
    assert {"200", "400", "404", "503"} <= set(operation["responses"])
    assert "text/plain" in operation["responses"]["200"]["content"]
    body = document["paths"]["/getdel"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["required"] == ["key"]


def test_an_app_serves_exactly_the_commands_it_is_given(clock):
    """create_app(commands=...): the verbs are an explicit collection, not module globals."""
    app = create_app({"APP_ENV": "production", "CLOCK": clock}, commands=[GetDelete])
    client = app.test_client()
    assert client.get("/set?key=k&value=v").json["error"] == "unknown_verb"
    assert client.get("/getdel?key=k").status_code == 404
    assert set(client.get("/openapi.json").json["paths"]) == {"/healthz", "/metrics", "/getdel"}


def test_an_app_can_be_given_its_store(clock):
    """create_app(store=...): the HTTP layer runs on whatever store it is handed."""
    from memflask.store import MemoryStore

    store = MemoryStore(clock=clock)
    store.update("k", lambda current, now: Item("from the test", None))
    client = create_app({"APP_ENV": "production"}, store=store).test_client()
    assert client.get("/get?key=k").data == b"from the test"
    client.get("/set?key=j&value=v")
    assert store.peek("j").value == "v"


class Chain(Append):
    """Append after a comma (a plugin's own way of growing)."""

    name = "chain"

    def grow(self, current: str, value: str) -> str:
        return f"{current},{value}"


@pytest.mark.parametrize(
    ("command", "described"), [(Append, True), (Set, True), (Chain, False), (Shout, False)]
)
def test_a_verb_is_run_server_side_only_where_its_description_is_its_own(command, described):
    """A subclass that overrides a method its change is made of (`change`, or `grow` for
    append and prepend) has no server-side description: its own code runs."""
    params = Params({"key": ["k"], "value": ["v"]}, Context(default_registry, CommandCounts()))
    instance = command()
    server_change = instance.conditioned_server_change(instance.validate(params))
    assert (server_change is not None) is described


def test_a_plugin_growing_its_own_way_grows_its_own_way(clock):
    app = create_app({"APP_ENV": "production"}, commands=(*DEFAULT_COMMANDS, Chain))
    client = app.test_client()
    client.get("/set?key=k&value=a")
    assert client.get("/chain?key=k&value=b").status_code == 204
    assert client.get("/get?key=k").data == b"a,b"
