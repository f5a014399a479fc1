"""Every way to start memflask says a bad setting in one line and exits 2, no traceback."""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import subprocess
import sys

import pytest

from tests.harness.servers import ROOT, free_port, wait_until_serving

# (environment variable, bad value, the setting the line names)
BAD_SETTINGS = [
    ("SIZE", "abc", "SIZE"),
    ("PORT", "xyz", "PORT"),
    ("MEMFLASK_MAX_BYTES", "-1", "MAX_BYTES"),
    ("MEMFLASK_INSTANCE_PATH", "README.md", "INSTANCE_PATH"),  # a file, from the checkout
]

needs_granian = pytest.mark.skipif(
    importlib.util.find_spec("granian") is None, reason="granian is an optional extra"
)


def entry_point(name: str, port: int) -> list[str]:
    """The arguments to Python that start memflask the way `name` says, on `port`."""
    flask_run = ["-m", "flask", "--app", "wsgi" if "wsgi" in name else "memflask", "run"]
    flask_run += ["--port", str(port), *(["--debug"] if "--debug" in name else [])]
    return {
        "python -m memflask": ["-m", "memflask"],
        "memflask serve": ["-m", "memflask.cli", "serve"],
        "memflask serve --server granian": ["-m", "memflask.cli", "serve", "--server", "granian"],
        "waitress-serve wsgi:app": ["-m", "waitress", f"--listen=127.0.0.1:{port}", "wsgi:app"],
        "flask --app memflask run": flask_run,
        "flask --app memflask run --debug": flask_run,
        "flask --app wsgi run": flask_run,
        "flask --app wsgi run --debug": flask_run,
        "granian --interface wsgi wsgi:app": [
            *["-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1"],
            *["--port", str(port), "wsgi:app"],
        ],
    }[name]


ENTRY_POINTS = [
    "python -m memflask",
    "memflask serve",
    pytest.param("memflask serve --server granian", marks=needs_granian),
    "waitress-serve wsgi:app",
    "flask --app memflask run",
    "flask --app memflask run --debug",
    "flask --app wsgi run",
    "flask --app wsgi run --debug",
]


def start(name: str, variable: str, value: str) -> subprocess.CompletedProcess:
    """Start memflask as `name` says with one bad setting; it must stop within 60 s."""
    return subprocess.run(
        [sys.executable, *entry_point(name, free_port())],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )


def bad_setting_lines(stderr: str, name: str, value: str) -> list[str]:
    """The lines saying the setting is bad; each names it, its value and what is allowed."""
    lines = [line for line in stderr.splitlines() if line.startswith("memflask: bad setting:")]
    for line in lines:
        assert line.startswith(f"memflask: bad setting: {name} must be "), stderr
        assert line.endswith((f"got {value!r}", f"got {value}")), stderr
    return lines


@pytest.mark.parametrize("variable, value, name", BAD_SETTINGS, ids=[s[0] for s in BAD_SETTINGS])
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_bad_setting_is_one_line_and_exit_2(entry, variable, value, name):
    result = start(entry, variable, value)
    assert result.returncode == 2, result.stderr
    assert bad_setting_lines(result.stderr, name, value) == result.stderr.splitlines()
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_flask_help_lists_its_commands_under_one_error_line_for_a_bad_setting():
    """`flask --app memflask --help` loads the app to list its commands: a bad setting is
    an "Error:" line above the help, as Flask says an app it cannot load, not a traceback.
    (`--app wsgi` stops at the import with the one line and exit 2 of every entry point.)"""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "memflask", "--help"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "SIZE": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    error = "Error: SIZE must be a whole number from 0 to 9223372036854775807, got 'abc'"
    assert result.stderr.splitlines()[0] == error, result.stderr
    assert "run " in result.stdout and "routes " in result.stdout  # the help still lists them


@needs_granian
def test_granians_own_command_says_a_bad_setting_in_one_line():
    """granian's worker imports wsgi.py and exits 2 with the line; granian itself then
    logs that its worker exited and ends with status 1 (it does not pass the status on)."""
    result = start("granian --interface wsgi wsgi:app", "SIZE", "abc")
    assert result.returncode == 1, result.stderr
    assert len(bad_setting_lines(result.stderr, "SIZE", "abc")) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_flask_run_logs_one_line_per_request_without_the_query_string():
    """Under `flask run`, memflask's own line per request, not also Werkzeug's (which
    shows the query string: keys and values); Werkzeug's banner and errors stay."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "memflask", "run", "--port", str(port)],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "")},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, process)  # one GET /healthz answered
        for target in ("/set?key=k&value=hush", "/get?key=k"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", target)
            assert connection.getresponse().status in (200, 204)
            connection.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as garbage:
            garbage.sendall(b"GARBAGE\r\n\r\n")  # Werkzeug answers 400 and logs an error
            assert b"Error code: 400" in garbage.makefile("rb").read()
    finally:
        process.terminate()
        stderr = process.communicate(timeout=30)[1]
    request_lines = [line for line in stderr.splitlines() if " GET /" in line or '"GET' in line]
    assert [line.split(": ", 1)[1].rsplit(" ", 1)[0] for line in request_lines] == [
        "GET /healthz 200",
        "GET /set 204",
        "GET /get 200",
    ], stderr
    assert "hush" not in stderr
    assert f"Running on http://127.0.0.1:{port}" in stderr  # Werkzeug's banner
    assert "code 400, message Bad request syntax ('GARBAGE')" in stderr  # and its errors
