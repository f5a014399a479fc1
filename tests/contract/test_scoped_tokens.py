"""Scoped tokens (TOKENS_FILE): a write token and a read token on `app1:`, and an admin
token, on every backend and server. What a token may do succeeds; everything else is
refused 403 `out_of_scope` (401 without a valid token) and changes nothing."""

from __future__ import annotations

import pytest

from memflask.core.tokens import add_token
from tests.harness.servers import state_of

VERBS_ON_A_KEY = [
    ("set", {"value": "v"}),
    ("add", {"value": "v"}),
    ("replace", {"value": "v"}),
    ("checkandset", {"value": "v", "compare": "x"}),
    ("append", {"value": "v"}),
    ("prepend", {"value": "v"}),
    ("increment", {"value": "1"}),
    ("decrement", {"value": "1"}),
    ("delete", {}),
    ("touch", {"ttl": "60"}),
    ("gat", {"ttl": "60"}),
    ("invalidate", {}),
]
READS_ON_A_KEY = [("get", {}), ("ttl", {}), ("mget", {})]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> dict:
    """One tokens file for the module (one granian process serves all its tests)."""
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    made = {
        "write": add_token(path, "app1-writer", "app1:", "write"),
        "read": add_token(path, "app1-reader", "app1:", "read"),
        "admin": add_token(path, "ops", "", "admin"),
    }
    return {"path": str(path), **made}


@pytest.fixture
def app_config(tokens) -> dict:
    return {"TOKENS_FILE": tokens["path"]}


def as_(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def call(client, token, verb, **params):
    return client.get(f"/{verb}", query_string=params, headers=as_(token))


def assert_out_of_scope(response):
    assert response.status_code == 403, response.data
    assert response.json["error"] == "out_of_scope"


@pytest.fixture
def seeded(client, store, tokens):
    """app1:k and app2:k hold "1"; asserts app2:k is untouched afterwards."""
    for key in ("app1:k", "app2:k"):
        assert call(client, tokens["admin"], "set", key=key, value="1").status_code == 204
    before = state_of(store, "app2:k")
    yield client
    assert state_of(store, "app2:k") == before, "a refused request changed another app's key"


@pytest.mark.parametrize("verb, params", VERBS_ON_A_KEY + READS_ON_A_KEY)
def test_a_write_token_works_on_its_own_keys(seeded, tokens, verb, params):
    response = call(seeded, tokens["write"], verb, key="app1:k", **params)
    assert response.status_code < 500 and response.status_code not in (401, 403), response.data


@pytest.mark.parametrize("verb, params", VERBS_ON_A_KEY + READS_ON_A_KEY)
def test_no_scoped_token_reaches_another_app_s_keys(seeded, tokens, verb, params):
    for kind in ("write", "read"):
        assert_out_of_scope(call(seeded, tokens[kind], verb, key="app2:k", **params))


@pytest.mark.parametrize("verb, params", READS_ON_A_KEY)
def test_a_read_token_reads_its_own_keys(seeded, tokens, verb, params):
    assert call(seeded, tokens["read"], verb, key="app1:k", **params).status_code == 200


@pytest.mark.parametrize("verb, params", VERBS_ON_A_KEY)
def test_a_read_token_changes_nothing(seeded, store, tokens, verb, params):
    before = state_of(store, "app1:k")
    assert_out_of_scope(call(seeded, tokens["read"], verb, key="app1:k", **params))
    assert state_of(store, "app1:k") == before


def test_an_mget_with_one_foreign_key_is_refused_whole(seeded, tokens):
    response = seeded.get("/mget?key=app1:k&key=app2:k", headers=as_(tokens["read"]))
    assert_out_of_scope(response)
    assert call(seeded, tokens["read"], "mget", key="app1:k").json == {"app1:k": "1"}


def test_a_batch_with_one_foreign_key_runs_nothing(seeded, store, tokens):
    before = state_of(store, "app1:k")
    batch = [
        {"verb": "set", "key": "app1:k", "value": "2"},
        {"verb": "get", "key": "app2:k"},
    ]
    assert_out_of_scope(seeded.post("/batch", json=batch, headers=as_(tokens["write"])))
    assert state_of(store, "app1:k") == before
    # A read token's batch of writes on its own keys: refused whole too.
    assert_out_of_scope(seeded.post("/batch", json=batch[:1], headers=as_(tokens["read"])))
    # Within the scope it runs, an entry that does not validate answering on its own.
    mine = [{"verb": "set", "key": "app1:k", "value": "2"}, {"verb": "get"}]
    answer = seeded.post("/batch", json=mine, headers=as_(tokens["write"]))
    assert [result["status"] for result in answer.json] == [204, 400]


def every_key(client, token, prefix=""):
    """/keys followed to its end (a page may hold fewer keys than there are, as SCAN's)."""
    keys, cursor = [], None
    while cursor != "":
        page = call(client, token, "keys", prefix=prefix, cursor=cursor or "")
        assert page.status_code == 200, page.data
        keys += page.json["keys"]
        cursor = page.json["cursor"]
    return sorted(set(keys))


def test_keys_lists_only_within_the_prefix(seeded, tokens):
    for kind in ("write", "read"):
        assert every_key(seeded, tokens[kind], prefix="app1:") == ["app1:k"]
        assert_out_of_scope(call(seeded, tokens[kind], "keys"))
        assert_out_of_scope(call(seeded, tokens[kind], "keys", prefix="app2:"))
        assert_out_of_scope(call(seeded, tokens[kind], "keys", prefix="app"))
    assert every_key(seeded, tokens["admin"]) == ["app1:k", "app2:k"]


def test_a_write_token_flushes_its_own_prefix_only(seeded, tokens):
    assert_out_of_scope(call(seeded, tokens["write"], "flush"))
    assert_out_of_scope(call(seeded, tokens["write"], "flush", prefix="app2:"))
    assert_out_of_scope(call(seeded, tokens["read"], "flush", prefix="app1:"))
    flushed = call(seeded, tokens["write"], "flush", prefix="app1:")
    assert flushed.json == {"flushed": 1}
    assert call(seeded, tokens["admin"], "get", key="app1:k").status_code == 404


@pytest.mark.parametrize("route", ["/stats", "/metrics", "/dashboard/about"])
def test_server_wide_figures_are_for_admin_tokens(client, tokens, route):
    for kind in ("write", "read"):
        assert_out_of_scope(client.get(route, headers=as_(tokens[kind])))
    assert client.get(route, headers=as_(tokens["admin"])).status_code == 200


def test_an_admin_token_flushes_everything(client, tokens):
    call(client, tokens["admin"], "set", key="app2:k", value="1")
    assert call(client, tokens["admin"], "flush").status_code == 204
    assert call(client, tokens["admin"], "get", key="app2:k").status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_no_token_or_an_unknown_one_is_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/get?key=app1:k", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert client.get("/healthz").status_code == 200  # still public
