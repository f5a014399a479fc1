"""Access: bearer token, cross-site browser writes, the Host allowlist, /healthz."""

from __future__ import annotations

import logging
import re

import pytest

from memflask import create_app
from memflask.config import ConfigError

TOKEN = "s3cret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def locked(clock):
    app = create_app({"APP_ENV": "production", "TOKEN": TOKEN, "CLOCK": clock})
    return app.test_client()


def value_of(client, key, headers=None):
    response = client.get(f"/get?key={key}", headers=headers or {})
    return response.data.decode() if response.status_code == 200 else None


# -- token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
@pytest.mark.parametrize("target", ["/set?key=k&value=v", "/get?key=k", "/stats", "/nosuchverb"])
def test_token_required_on_every_route(locked, headers, target):
    response = locked.get(target, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert value_of(locked, "k", BEARER) is None


def test_token_lets_the_holder_in(locked):
    assert locked.get("/set?key=k&value=v", headers=BEARER).status_code == 204
    assert value_of(locked, "k", BEARER) == "v"


def test_healthz_needs_no_token(locked):
    response = locked.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_no_token_set_means_open(client):
    assert client.get("/set?key=k&value=v").status_code == 204


def test_token_from_the_environment_stays_text(monkeypatch):
    monkeypatch.setenv("MEMFLASK_TOKEN", "12345")
    client = create_app({"APP_ENV": "production"}).test_client()
    assert client.get("/stats").status_code == 401
    assert client.get("/stats", headers={"Authorization": "Bearer 12345"}).status_code == 200


def test_empty_token_is_a_bad_setting():
    with pytest.raises(ConfigError, match="TOKEN"):
        create_app({"TOKEN": "  "})


def test_the_token_never_reaches_the_log(clock, caplog):
    client = create_app({"APP_ENV": "", "TOKEN": TOKEN, "CLOCK": clock}).test_client()
    with caplog.at_level(logging.DEBUG):
        client.get("/set?key=k&value=v", headers=BEARER)
        client.get("/get?key=k", headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    assert caplog.records, "requests should be logged"
    assert TOKEN not in caplog.text


def test_a_refused_request_is_logged_with_its_real_duration(clock, caplog):
    app = create_app({"APP_ENV": "", "TOKEN": TOKEN, "CLOCK": clock, "HOT_PATH": False})
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="memflask"):
        client.get("/healthz", headers={"Host": "evil.example", **BEARER})  # the Host guard
        client.get("/metrics")  # no token
        client.get("/healthz", headers=BEARER)
    lines = [record.getMessage() for record in caplog.records]
    # The clock starts before the guards run: never a negative duration for a refusal.
    assert [re.sub(r" \d+\.\d\dms$", " <ms>", line) for line in lines] == [
        "GET /healthz 403 <ms>",
        "GET /metrics 401 <ms>",
        "GET /healthz 200 <ms>",
    ]


# -- cross-site writes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
    ],
)
@pytest.mark.parametrize(
    "target", ["/set?key=k&value=evil", "/delete?key=k", "/flush", "/increment?key=n&value=1"]
)
def test_cross_site_writes_are_403_and_change_nothing(client, headers, target):
    client.get("/set?key=k&value=v")
    response = client.get(target, headers=headers)
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "MEMFLASK_ALLOWED_ORIGINS" in response.json["message"]
    assert value_of(client, "k") == "v"
    assert value_of(client, "n") is None


def test_cross_site_batch_is_refused(client):
    response = client.post(
        "/batch", json=[{"verb": "flush"}], headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403


def test_cross_site_reads_are_answered(client):
    client.get("/set?key=k&value=v")
    response = client.get("/get?key=k", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


@pytest.mark.parametrize("fetch_site", ["same-origin", "none"])
def test_same_origin_and_user_typed_requests_may_write(client, fetch_site):
    assert (
        client.get("/set?key=k&value=v", headers={"Sec-Fetch-Site": fetch_site}).status_code == 204
    )


def test_allowed_origin_may_write(clock):
    app = create_app(
        {"APP_ENV": "production", "ALLOWED_ORIGINS": "https://app.example", "CLOCK": clock}
    )
    client = app.test_client()
    headers = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    assert client.get("/set?key=k&value=v", headers=headers).status_code == 204
    other = {"Origin": "https://other.example"}
    assert client.get("/set?key=k&value=x", headers=other).status_code == 403


# -- Host allowlist -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "127.0.0.1",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:8000",
        "LOCALHOST:9",
    ],
)
def test_loopback_hosts_are_allowed_by_default(client, host):
    assert client.get("/stats", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "10.0.0.1",
        "[::2]",
        "localhost:99999",
        "localhost:http",
        "user@localhost",
        "localhost/x",
    ],
)
@pytest.mark.parametrize("target", ["/get?key=k", "/set?key=k&value=v", "/healthz", "/nope"])
def test_other_hosts_are_403_on_every_route(client, host, target):
    response = client.get(target, headers={"Host": host})
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "MEMFLASK_ALLOWED_HOSTS" in response.json["message"]
    assert value_of(client, "k") is None


def test_allowed_hosts_widens_the_list(clock):
    config = {"APP_ENV": "production", "ALLOWED_HOSTS": "cache.internal,.svc.local", "CLOCK": clock}
    client = create_app(config).test_client()
    assert client.get("/stats", headers={"Host": "cache.internal:8000"}).status_code == 200
    assert client.get("/stats", headers={"Host": "memflask.svc.local"}).status_code == 200
    assert client.get("/stats", headers={"Host": "localhost"}).status_code == 403


def test_allowed_hosts_star_allows_any(monkeypatch):
    monkeypatch.setenv("MEMFLASK_ALLOWED_HOSTS", "*")
    client = create_app({"APP_ENV": "production"}).test_client()
    assert client.get("/stats", headers={"Host": "anything.example"}).status_code == 200


def test_host_check_comes_before_the_token(locked):
    response = locked.get("/stats", headers={"Host": "evil.example", **BEARER})
    assert response.status_code == 403


# -- errors ---------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_logged_with_its_request(clock, caplog):
    from memflask.commands import Command

    class Broken(Command):
        name = "broken"

        def validate(self, params):
            return None

        def apply(self, store, args):
            raise RuntimeError("a bug")

    app = create_app({"APP_ENV": "production", "TOKEN": TOKEN, "CLOCK": clock})
    app.extensions["memflask"].context.registry.register(Broken)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/broken?key=k", headers=BEARER)
    assert response.status_code == 500
    assert response.json["error"] == "internal_server_error"
    assert "a bug" not in response.json["message"]  # no internals to the client
    assert "/broken" in caplog.text and "RuntimeError: a bug" in caplog.text
    assert TOKEN not in caplog.text
