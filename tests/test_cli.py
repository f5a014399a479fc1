"""The memflask command: serve, and the client commands with their exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from typing import Optional

import pytest
from click.testing import CliRunner

from memflask import create_app
from memflask.cli import main
from memflask.client import Client
from memflask.placement import server_for
from tests.harness.servers import ROOT, LiveServer, free_port, wait_until_serving


@pytest.fixture
def run(live_server):
    url = f"http://127.0.0.1:{live_server.port}"

    def invoke(*args: str):
        return CliRunner().invoke(main, [*args, "--url", url])

    return invoke


def test_set_get_delete(run):
    assert run("set", "greeting", "hello world").exit_code == 0
    result = run("get", "greeting")
    assert (result.exit_code, result.output) == (0, "hello world\n")
    assert run("delete", "greeting").exit_code == 0
    result = run("get", "greeting")
    assert (result.exit_code, result.output) == (1, "")


def test_invalidate_makes_the_value_stale_and_exits_1_when_absent(run, live_server):
    run("set", "k", "v")
    assert run("invalidate", "k").exit_code == 0
    assert run("get", "k").exit_code == 1  # a plain read misses a stale value
    status, _, body = live_server.request("GET", "/get?key=k&lease=30")
    assert (status, body) == (200, b"v")  # a lease reader still gets it
    result = run("invalidate", "absent")
    assert (result.exit_code, result.output) == (1, "")


def test_incr_decr_print_the_new_value(run):
    assert run("incr", "n").output == "1\n"
    assert run("incr", "n", "10").output == "11\n"
    assert run("decr", "n", "4").output == "7\n"


def test_stats_and_flush(run):
    run("set", "a", "1")
    assert json.loads(run("stats").output)["keyCount"] == 1
    assert run("flush").exit_code == 0
    assert json.loads(run("stats").output)["keyCount"] == 0


def test_keys_and_flush_by_prefix(run):
    for key in ("app1:a", "app1:b", "app2:a"):
        run("set", key, "1")
    result = run("keys", "--prefix", "app1:")
    assert (result.exit_code, sorted(result.output.split())) == (0, ["app1:a", "app1:b"])
    result = run("flush", "--prefix", "app1:")
    assert (result.exit_code, result.output) == (0, "2\n")
    assert run("keys").output == "app2:a\n"


def test_refusal_exits_3_with_the_reason(run):
    run("set", "word", "abc")
    result = run("incr", "word")
    assert result.exit_code == 3
    assert "not_an_integer" in result.output


def test_usage_error_exits_2(run):
    assert run("incr", "n", "lots").exit_code == 2


def test_unreachable_server_exits_4():
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["get", "k", "--url", url, "--timeout", "2"])
    assert result.exit_code == 4


def test_token_from_the_environment(clock):
    app = create_app({"APP_ENV": "production", "TOKEN": "s3cret", "CLOCK": clock})
    with LiveServer(app) as server:
        url = f"http://127.0.0.1:{server.port}"
        runner = CliRunner()
        assert runner.invoke(main, ["set", "k", "v", "--url", url]).exit_code == 3
        result = runner.invoke(
            main, ["set", "k", "v", "--url", url], env={"MEMFLASK_TOKEN": "s3cret"}
        )
        assert result.exit_code == 0


def test_serve_takes_every_setting_as_an_option():
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "memflask.cli",
        "serve",
        "--port",
        str(port),
        "--size",
        "2",
        "--app-env",
        "production",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={"PATH": os.environ.get("PATH", "")})
    try:
        wait_until_serving(port, process)
        url = f"http://127.0.0.1:{port}"
        stats = json.loads(CliRunner().invoke(main, ["stats", "--url", url]).output)
        assert stats["maxSize"] == 2
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_serve_with_a_bad_setting_exits_2():
    result = CliRunner().invoke(main, ["serve", "--max-bytes", "-5"])
    assert result.exit_code == 2
    assert "MAX_BYTES" in result.output


# -- what the user did wrong: one clear line, no traceback ---------------------------------


def run_command(*args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "options, said",
    [
        (["--url", "localhost:8000"], "not a server URL"),
        (["--url", "ftp://127.0.0.1:8000"], "not a server URL"),
        (["--timeout", "0"], "--timeout"),
    ],
)
def test_a_bad_client_option_is_one_line_and_exit_2(options, said):
    result = run_command("-m", "memflask.cli", "get", "k", *options)
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in (["-m", "memflask"], ["-m", "memflask.cli", "serve", "--port", str(port)]):
            result = run_command(*command, env={"PORT": str(port)})
            assert result.returncode == 1, result.stderr
            assert f"port {port} is in use" in result.stderr
            assert "Traceback" not in result.stderr


def test_serve_instance_path_is_named_at_start_and_holds_the_snapshot(tmp_path):
    """--instance-path, relative to the working directory: the start-up line names the
    folder, and a relative SNAPSHOT_PATH is saved in it at the stop."""
    port = free_port()
    command = [sys.executable, "-m", "memflask.cli", "serve", "--port", str(port)]
    command += ["--instance-path", "state", "--snapshot-path", "cache.snapshot"]
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=subprocess.PIPE)
    try:
        wait_until_serving(port, process)
        url = f"http://127.0.0.1:{port}"
        assert CliRunner().invoke(main, ["set", "k", "v", "--url", url]).exit_code == 0
    finally:
        process.terminate()
        stderr = process.communicate(timeout=30)[1].decode()
    assert process.returncode == 0, stderr
    assert f"; instance folder {tmp_path / 'state'})\n" in stderr, stderr
    assert '["k","v",null]' in (tmp_path / "state" / "cache.snapshot").read_text()


def test_several_urls_spread_the_keys_as_the_client_does():
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(LiveServer(create_app({"APP_ENV": "production"}))) for _ in range(3)
        ]
        urls = [f"http://127.0.0.1:{server.port}" for server in servers]
        options = [part for url in urls for part in ("--url", url)]
        for number in range(30):
            assert CliRunner().invoke(main, ["set", f"k{number}", "v", *options]).exit_code == 0
        environment = {"MEMFLASK_URL": ",".join(urls)}
        result = CliRunner(env=environment).invoke(main, ["get", "k7"])
        assert (result.exit_code, result.output) == (0, "v\n")
        stats = json.loads(CliRunner(env=environment).invoke(main, ["stats"]).output)
        assert stats["keyCount"] == 30
        with Client(server_for("k7", urls)) as holder:
            assert holder.get("k7") == "v"
        twice = CliRunner().invoke(main, ["get", "k7", "--url", urls[0], "--url", urls[0]])
        assert twice.exit_code == 2


def test_token_add_list_remove(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("MEMFLASK_TOKENS_FILE", "tokens.json")
    runner = CliRunner()
    added = runner.invoke(main, ["token", "add", "app1", "--prefix", "app1:", "--rights", "write"])
    assert added.exit_code == 0, added.output
    token = added.output.splitlines()[-1]  # the last line, printed once
    assert len(token) >= 43 and token not in (tmp_path / "tokens.json").read_text()
    listed = runner.invoke(main, ["token", "list"])
    assert [json.loads(line) for line in listed.output.splitlines()] == [
        {"name": "app1", "prefix": "app1:", "rights": "write"}
    ]
    again = runner.invoke(main, ["token", "add", "app1", "--rights", "read"])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(main, ["token", "add", "no spaces", "--rights", "read"])
    assert bad.exit_code == 2
    wrong = runner.invoke(main, ["token", "add", "x", "--rights", "root"])
    assert wrong.exit_code == 2
    assert runner.invoke(main, ["token", "remove", "app1"]).exit_code == 0
    assert runner.invoke(main, ["token", "remove", "app1"]).exit_code == 1
    assert runner.invoke(main, ["token", "list"]).output == ""


def test_token_commands_need_a_tokens_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["token", "list"])
    assert result.exit_code == 2 and "TOKENS_FILE" in result.output
    given = CliRunner().invoke(main, ["token", "add", "a", "--rights", "read", "--file", "t.json"])
    assert given.exit_code == 0 and (tmp_path / "t.json").exists()
