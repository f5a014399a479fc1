"""Settings: defaults, instance/config.py, the environment (original and MEMFLASK_ names)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from flask import Config

from memflask import create_app
from memflask.config import DEFAULTS, ConfigError, load, split_listen_address
from memflask.core.tokens import write_tokens_file
from tests.harness.servers import ROOT


def test_defaults():
    app = create_app()
    assert app.config["PORT"] == 8000
    assert app.config["HOST"] == "127.0.0.1"
    assert app.config["SIZE"] == 0
    assert app.config["MAX_BYTES"] == 64 * 1024 * 1024
    assert app.config["MAX_VALUE_BYTES"] == 1024 * 1024
    assert app.config["MAX_KEY_BYTES"] == 250


@pytest.mark.parametrize(
    "settings, threads",
    [
        ({}, 2),  # the memory store: its requests never wait for I/O
        ({"STORE_URL": "redis://127.0.0.1:1/0"}, 4),  # a thread waits out each round trip
        ({"THREADS": 4}, 4),
        ({"THREADS": "1", "STORE_URL": "redis://127.0.0.1:1/0"}, 1),
    ],
)
def test_worker_threads_follow_the_store_unless_set(settings, threads):
    config = Config(str(ROOT))
    load(config, test_config=settings)
    assert DEFAULTS["THREADS"] is None
    assert config["THREADS"] == threads


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8000", ("", "8000")),
        (":8000", ("", "8000")),
        ("0.0.0.0:9000", ("0.0.0.0", "9000")),
        ("[::1]:8001", ("::1", "8001")),
    ],
)
def test_split_listen_address(text, expected):
    assert split_listen_address(text) == expected


@pytest.mark.parametrize("value, port", [("8123", 8123), (":8124", 8124)])
def test_port_from_the_environment_in_both_forms(monkeypatch, value, port):
    monkeypatch.setenv("PORT", value)
    app = create_app()
    assert app.config["PORT"] == port
    assert app.config["HOST"] == "127.0.0.1"


def test_size_and_app_env_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIZE", "3")
    monkeypatch.setenv("APP_ENV", "production")
    app = create_app()
    assert app.config["SIZE"] == 3
    assert app.extensions["memflask"].store.max_keys == 3
    assert app.test_client().get("/stats").json["maxSize"] == 3


def test_memflask_prefixed_names(monkeypatch):
    monkeypatch.setenv("MEMFLASK_MAX_BYTES", "4096")
    monkeypatch.setenv("MEMFLASK_MAX_BATCH", "7")
    app = create_app()
    assert app.config["MAX_BYTES"] == 4096
    assert app.config["MAX_BATCH"] == 7


def test_memflask_name_wins_over_the_original(monkeypatch):
    monkeypatch.setenv("SIZE", "3")
    monkeypatch.setenv("MEMFLASK_SIZE", "5")
    assert create_app().config["SIZE"] == 5


def test_instance_config_then_environment(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text("SIZE = 11\nMAX_BATCH = 12\n")
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path))
    monkeypatch.setenv("SIZE", "13")
    app = create_app()
    assert app.config["MAX_BATCH"] == 12
    assert app.config["SIZE"] == 13


@pytest.mark.parametrize(
    "name, value",
    [
        ("SIZE", "many"),
        ("SIZE", "-1"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("MAX_BYTES", "1.5"),
        ("MAX_VALUE_BYTES", "0"),
        ("MAX_KEY_BYTES", "0"),
        ("MAX_BATCH", "0"),
        ("MAX_ANSWER_BYTES", "1024"),
        ("MAX_SCAN_KEYS", "-1"),
        ("THREADS", "0"),
        ("EVICTION", "lfu"),
        ("EVICTION", "LRU"),
        ("EVICTION", ""),
    ],
)
def test_bad_setting_stops_start_up_naming_it(monkeypatch, name, value):
    variable = name if name in ("SIZE", "PORT") else f"MEMFLASK_{name}"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=name):
        create_app()


def test_bad_setting_exits_python_m_memflask_with_a_message():
    result = subprocess.run(
        [sys.executable, "-m", "memflask"],
        env={"SIZE": "lots", "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "memflask: bad setting: SIZE must be a whole number from 0 to 9223372036854775807, "
        "got 'lots'\n"
    )


def test_a_bad_setting_is_still_a_value_error_to_library_callers(monkeypatch):
    monkeypatch.setenv("SIZE", "lots")
    with pytest.raises(ValueError, match="SIZE must be a whole number"):
        create_app()


def test_request_logging_follows_app_env(clock, caplog):
    noisy = create_app({"APP_ENV": "", "CLOCK": clock}).test_client()
    quiet = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    with caplog.at_level("INFO", logger="memflask"):
        quiet.get("/get?key=quiet")
        noisy.get("/get?key=noisy")
        noisy.get("/healthz")  # through Flask, not the hot path: one line too
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("GET /get 404 ") for message in messages)
    assert not any("quiet" in message for message in messages)
    assert not any("noisy" in message for message in messages)  # no query string
    assert any(message.startswith("GET /healthz 200 ") for message in messages)


def test_memflask_port_takes_the_original_forms(monkeypatch, clock):
    monkeypatch.setenv("MEMFLASK_PORT", "0.0.0.0:8123")
    app = create_app({"APP_ENV": "production", "CLOCK": clock})
    assert (app.config["HOST"], app.config["PORT"]) == ("0.0.0.0", 8123)
    monkeypatch.setenv("MEMFLASK_PORT", ":8124")
    assert create_app({"CLOCK": clock}).config["PORT"] == 8124


# -- the instance folder ------------------------------------------------------------------------


def test_the_instance_folder_of_a_clone_is_instance_beside_the_package():
    # Flask's rule for a package imported from a folder (not site-packages): <folder>/instance.
    assert create_app().instance_path == str(ROOT / "instance")


def test_memflask_instance_path_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "config.py").write_text("SIZE = 11\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", "here")
    app = create_app()
    assert app.instance_path == str(tmp_path / "here")
    assert app.config["INSTANCE_PATH"] == str(tmp_path / "here")
    assert app.config["SIZE"] == 11  # its config.py was read


def test_the_cli_instance_path_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path / "from-env"))
    app = create_app(settings={"INSTANCE_PATH": str(tmp_path / "from-cli")})
    assert app.instance_path == str(tmp_path / "from-cli")  # need not exist yet


def test_an_empty_instance_path_is_flasks_rule(monkeypatch):
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", "")
    assert create_app().instance_path == str(ROOT / "instance")


def test_an_instance_path_that_is_not_a_folder_is_a_bad_setting(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path / "file"))
    with pytest.raises(ConfigError, match=r"INSTANCE_PATH must be a folder .*file'$"):
        create_app()


def test_instance_path_cannot_come_from_the_instance_config(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text(f"INSTANCE_PATH = {str(tmp_path / 'other')!r}\n")
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"INSTANCE_PATH cannot be set in instance/config\.py"):
        create_app()


# -- MEMFLASK_<NAME>: every form the plain name takes ---------------------------------------

# Text a setting may be given as. PORT, SIZE and APP_ENV are compared with the original's
# environment names; every other setting with the same text given by its plain name
# (`NAME = "text"` in instance/config.py, `memflask serve --name text`). MEMFLASK_<NAME>
# goes through Flask's from_prefixed_env, which parses JSON first: `123`, `null`, `true`
# and `007` must not come out as something else.
FORMS = {
    "PORT": ["8123", ":8123", "127.0.0.2:8123", "[::1]:8123", " 8123 "],
    "SIZE": ["3", " 3 ", "007", "0"],
    "APP_ENV": ["production", "", "1", "null"],
    "HOST": ["0.0.0.0", "::1", "1", "true"],
    "THREADS": ["8", " 8", "08"],
    "MAX_KEY_BYTES": ["12", "012"],
    "MAX_VALUE_BYTES": ["4096", " 4096 "],
    "MAX_BYTES": ["0", "4096", "04096"],
    "EVICTION": ["lru", "s3fifo"],
    "MAX_BATCH": ["7", "007"],
    "MAX_ANSWER_BYTES": ["65536", " 1048576 ", "016777216"],
    "MAX_SCAN_KEYS": ["0", "5000", "05000"],
    "TOKEN": ["s3cret", "123", "null", "true", "[1]"],
    "TOKENS_FILE": ["tokens.json", "123", ""],
    "TLS_CERT": [""],  # with TLS_KEY: tests/serving/test_tls.py
    "TLS_KEY": [""],
    "ALLOWED_HOSTS": ["a.example,.b.example", "*", "123", "null"],
    "ALLOWED_ORIGINS": ["https://app.example", "*", ""],
    "SNAPSHOT_PATH": ["cache.snapshot", "123", ""],
    "SNAPSHOT_INTERVAL": ["0", "60", "060"],
    "STORE_URL": ["memory://"],
    "STORE_PREFIX": ["app:", "123", "null"],
    "STORE_TIMEOUT_MS": ["500", "0500"],
    "HOT_PATH": ["0", "1", "false", "True", "off", "yes"],
}
ORIGINAL_NAMES = ("PORT", "SIZE", "APP_ENV")


def test_every_setting_has_forms_to_check():
    assert set(FORMS) == set(DEFAULTS) - {"CLOCK"}


def settings_of(app) -> dict:
    settings = {name: app.config[name] for name in DEFAULTS}
    app.extensions["memflask"].lifecycle.shutdown()  # the snapshot saver, if one started
    return settings


@pytest.mark.parametrize(
    "name, text", [(name, text) for name, forms in FORMS.items() for text in forms]
)
def test_memflask_name_takes_every_form_of_the_plain_name(name, text, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFLASK_INSTANCE_PATH", str(tmp_path))  # a SNAPSHOT_PATH lands here
    if name == "TOKENS_FILE" and text:
        write_tokens_file(tmp_path / text, [])  # it must exist: it is read at start
    if name in ORIGINAL_NAMES:
        monkeypatch.setenv(name, text)
        plain = settings_of(create_app())
        monkeypatch.delenv(name)
    else:
        plain = settings_of(create_app(settings={name: text}))
    monkeypatch.setenv(f"MEMFLASK_{name}", text)
    assert settings_of(create_app()) == plain
