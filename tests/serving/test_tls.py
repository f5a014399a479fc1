"""HTTPS through granian's own TLS (TLS_CERT, TLS_KEY), with a CA and certificates made
at test time: every client verifies the server by the CA file it is given, and refuses
a certificate another CA signed; plain HTTP to the TLS port gets no answer."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
import time

import anyio
import pytest
from click.testing import CliRunner

from memflask.aio import AsyncClient
from memflask.cli import main
from memflask.client import (
    Client,
    MemflaskAuthenticationError,
    MemflaskConnectionError,
    MemflaskForbiddenError,
)
from memflask.core.tokens import add_token
from memflask.serving.common import token_in_clear_warning
from tests.harness.certificates import make_authority
from tests.harness.servers import ROOT, free_port

pytest.importorskip("granian", reason="granian is an optional extra: pip install memflask[granian]")

TOKEN = "tls-test-token"


@pytest.fixture(scope="module")
def authorities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    return make_authority(folder, "ours"), make_authority(folder, "theirs")


@pytest.fixture(scope="module")
def https_server(authorities, tmp_path_factory):
    """`memflask serve --server granian --tls-cert --tls-key` on a free loopback port."""
    ours = authorities[0]
    port = free_port()
    log = tmp_path_factory.mktemp("tls-log") / "server.log"
    instance = tmp_path_factory.mktemp("tls-instance")
    add_token(instance / "tokens.json", "app1", "app1:", "write")  # one scoped token at start
    environment = {
        **os.environ,
        "MEMFLASK_INSTANCE_PATH": str(instance),
        "MEMFLASK_TOKEN": TOKEN,
        "MEMFLASK_TOKENS_FILE": "tokens.json",
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memflask.cli",
                "serve",
                "--server",
                "granian",
                "--port",
                str(port),
                "--tls-cert",
                str(ours.cert_file),
                "--tls-key",
                str(ours.key_file),
            ],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=output,
        )
    try:
        wait_for_https(port, ours.ca_file, process, log)
        yield f"https://127.0.0.1:{port}", port, log, instance / "tokens.json"
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_https(port, ca_file, process, log) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise AssertionError(f"no HTTPS answer: {log.read_text()}")


def test_the_sync_client_round_trips_over_https(https_server, authorities):
    url = https_server[0]
    with Client(url, token=TOKEN, ca_file=str(authorities[0].ca_file)) as client:
        assert client.set("k", "over tls") is True
        assert client.get("k") == "over tls"


def test_the_async_client_round_trips_over_https(https_server, authorities):
    async def scenario():
        ca_file = str(authorities[0].ca_file)
        async with AsyncClient(https_server[0], token=TOKEN, ca_file=ca_file) as client:
            await client.set("async", "over tls")
            return await client.get("async")

    assert anyio.run(scenario) == "over tls"


def test_the_cli_round_trips_over_https(https_server, authorities):
    common = ["--url", https_server[0], "--token", TOKEN, "--ca-file", str(authorities[0].ca_file)]
    assert CliRunner().invoke(main, ["set", "cli", "v", *common]).exit_code == 0
    result = CliRunner().invoke(main, ["get", "cli", *common])
    assert (result.exit_code, result.output) == (0, "v\n")
    refused = CliRunner().invoke(main, ["get", "cli", "--url", https_server[0], "--token", TOKEN])
    assert refused.exit_code == 4  # the system's CAs do not know this one


def test_the_framework_backends_round_trip_over_https(https_server, authorities):
    from memflask.caching import CachelibMemflaskCache

    ca_file = str(authorities[0].ca_file)
    cache = CachelibMemflaskCache(https_server[0], token=TOKEN, ca_file=ca_file)
    assert cache.set("flask", {"a": 1}) and cache.get("flask") == {"a": 1}
    pytest.importorskip("django")
    from memflask.django import MemflaskCache

    backend = MemflaskCache(https_server[0], {"OPTIONS": {"token": TOKEN, "ca_file": ca_file}})
    backend.set("django", [1, 2])
    assert backend.get("django") == [1, 2]


def test_scoped_tokens_hold_over_https_and_a_new_one_is_taken_while_serving(
    https_server, authorities
):
    url, ca_file = https_server[0], str(authorities[0].ca_file)
    token = add_token(https_server[3], "app1-late", "app1:", "write")
    with Client(url, token=token, ca_file=ca_file) as client:
        deadline = time.monotonic() + 6  # taken within 6 s, by granian's worker too
        while True:
            try:
                client.set("app1:k", "v")
                break
            except MemflaskAuthenticationError:
                assert time.monotonic() < deadline, "the new token was not taken within 6 s"
                time.sleep(0.2)
        assert client.get("app1:k") == "v"
        with pytest.raises(MemflaskForbiddenError):
            client.set("app2:k", "v")
        with pytest.raises(MemflaskForbiddenError):
            client.stats()


def test_a_certificate_from_another_ca_is_refused(https_server, authorities):
    theirs = str(authorities[1].ca_file)
    refusing = Client(https_server[0], token=TOKEN, ca_file=theirs, timeout=5)
    with refusing, pytest.raises(MemflaskConnectionError, match=r"(?i)certificate"):
        refusing.get("k")
    system_cas = Client(https_server[0], token=TOKEN, timeout=5)
    with system_cas, pytest.raises(MemflaskConnectionError):
        system_cas.get("k")


def test_plain_http_to_the_tls_port_gets_no_answer(https_server):
    connection = http.client.HTTPConnection("127.0.0.1", https_server[1], timeout=5)
    try:
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.request("GET", "/get?key=k", headers={"Authorization": f"Bearer {TOKEN}"})
            connection.getresponse()
    finally:
        connection.close()


def test_the_start_up_line_says_https_and_no_clear_token_warning(https_server):
    text = https_server[2].read_text()
    assert f"serving https://127.0.0.1:{https_server[1]}" in text
    assert "travel in clear" not in text


def test_tokens_in_clear_on_a_network_address_are_warned_once():
    settings = {"TLS_CERT": "", "TOKEN": "t", "TOKENS_FILE": ""}
    warning = token_in_clear_warning(settings, [("0.0.0.0", 8000)])
    assert warning is not None and "0.0.0.0" in warning and "--tls-cert" in warning
    for addresses in ([("127.0.0.1", 8000)], [("::1", 8000)], [("localhost", 8000)]):
        assert token_in_clear_warning(settings, addresses) is None
    assert token_in_clear_warning({**settings, "TOKEN": None}, [("0.0.0.0", 8000)]) is None
    assert token_in_clear_warning({**settings, "TLS_CERT": "c"}, [("0.0.0.0", 8000)]) is None


def test_waitress_refuses_tls_settings_in_one_line(authorities, tmp_path):
    ours = authorities[0]
    environment = {
        **os.environ,
        "MEMFLASK_INSTANCE_PATH": str(tmp_path),
        "MEMFLASK_PORT": str(free_port()),
        "MEMFLASK_TLS_CERT": str(ours.cert_file),
        "MEMFLASK_TLS_KEY": str(ours.key_file),
    }
    result = subprocess.run(
        [sys.executable, "-m", "memflask"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "waitress has no TLS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"TLS_CERT": "cert.pem"}, "go together"),
        ({"TLS_KEY": "key.pem"}, "go together"),
        ({"TLS_CERT": "missing.pem", "TLS_KEY": "missing.key"}, "readable file"),
    ],
)
def test_tls_settings_are_checked_at_start(tmp_path, settings, message):
    from memflask import create_app
    from memflask.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_app({"INSTANCE_PATH": str(tmp_path), **settings})
