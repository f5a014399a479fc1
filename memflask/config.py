"""Settings: defaults, then instance/config.py, then the environment; validated once at start-up."""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Mapping, NoReturn, Optional

from flask import Config
from flask.cli import NoAppException

from . import limits
from .limits import MIB
from .store import EVICTION_POLICIES, backend_for

DEFAULTS: dict[str, Any] = {
    "HOST": "127.0.0.1",  # loopback unless the operator widens it
    "PORT": 8000,
    "THREADS": None,  # waitress worker threads; None: by the store (default_threads)
    "APP_ENV": "",  # "production" turns request logging off
    "SIZE": 0,  # most keys held, 0 = no cap (the original's setting)
    "MAX_KEY_BYTES": limits.MAX_KEY_BYTES,
    "MAX_VALUE_BYTES": limits.MAX_VALUE_BYTES,
    "MAX_BYTES": limits.MAX_BYTES,  # keys + values held, 0 = no cap
    "EVICTION": "lru",  # which items go first when full: lru (the original's) or s3fifo
    "MAX_BATCH": limits.MAX_BATCH,  # commands per /batch, keys per /mget
    "MAX_ANSWER_BYTES": limits.MAX_ANSWER_BYTES,  # the largest /batch, /mget or /keys answer
    "MAX_SCAN_KEYS": limits.MAX_SCAN_KEYS,  # what a /batch's scans may examine
    "CLOCK": None,  # a callable returning Unix seconds; None = the real time (tests inject one)
    "TOKEN": None,  # when set, every route but /healthz needs "Authorization: Bearer <token>"
    "TOKENS_FILE": "",  # scoped tokens (relative: in the instance folder); "" = none
    "TLS_CERT": "",  # granian: serve HTTPS with this certificate chain (PEM), and TLS_KEY
    "TLS_KEY": "",  # its private key (PEM); both relative: in the instance folder
    "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",  # Host names served (any port); "*": any
    "ALLOWED_ORIGINS": "",  # browser origins allowed to write, e.g. "https://app.example"
    "SNAPSHOT_PATH": "",  # warm restarts: a file (relative: in the instance folder); "" = off
    "SNAPSHOT_INTERVAL": 300,  # seconds between saves; 0 = only at a clean shutdown
    "STORE_URL": "memory://",  # or redis://host:port/db for the Redis backend
    "STORE_PREFIX": "memflask:",  # the Redis namespace: memflask's keys only
    "STORE_TIMEOUT_MS": 1000,  # how long a Redis call may take before a 503
    "HOT_PATH": True,  # serve the verbs at the WSGI level, past Flask's per-request work
}

# Settings that are text: read from MEMFLASK_<NAME> as given, never parsed as JSON
# (from_prefixed_env would turn MEMFLASK_TOKEN=123 into a number).
TEXT_SETTINGS = (
    "HOST",
    "APP_ENV",
    "EVICTION",
    "TOKEN",
    "TOKENS_FILE",
    "TLS_CERT",
    "TLS_KEY",
    "ALLOWED_HOSTS",
    "ALLOWED_ORIGINS",
    "SNAPSHOT_PATH",
    "STORE_URL",
    "STORE_PREFIX",
)
LIST_SETTINGS = ("ALLOWED_HOSTS", "ALLOWED_ORIGINS")
BOOLEAN_SETTINGS = ("HOT_PATH",)
# How a yes/no setting may be written (MEMFLASK_HOT_PATH=0, =false, =off...).
BOOLEAN_WORDS = {"1": True, "true": True, "yes": True, "on": True}
BOOLEAN_WORDS.update({"0": False, "false": False, "no": False, "off": False})

# name -> (smallest, largest) for the whole-number settings.
INTEGER_SETTINGS = {
    "PORT": (0, 65535),
    "THREADS": (1, 1024),
    "SIZE": (0, 2**63 - 1),
    "MAX_KEY_BYTES": (1, MIB),
    "MAX_VALUE_BYTES": (1, 2**31 - 1),
    "MAX_BYTES": (0, 2**63 - 1),
    "MAX_BATCH": (1, 1_000_000),
    "MAX_ANSWER_BYTES": (64 * 1024, 2**40),
    "MAX_SCAN_KEYS": (0, 2**63 - 1),
    "SNAPSHOT_INTERVAL": (0, 86_400),
    "STORE_TIMEOUT_MS": (1, 600_000),
}

# waitress worker threads unless THREADS is set (bench/README.md, "Serving settings").
# The memory store's requests never wait for I/O, so more threads only take turns at the
# GIL: 2 served 1.3x what 4 did, and 1 served 1.4x but left every request waiting out the
# whole of a slow one (a 16 MiB /mget). On Redis a thread waits out each round trip.
MEMORY_STORE_THREADS = 2
SHARED_STORE_THREADS = 4

# A JSON or form body may encode each value byte as up to 6 bytes (\u00XX escapes).
BODY_BYTES_PER_VALUE_BYTE = 6
BODY_OVERHEAD_BYTES = 64 * 1024


class ConfigError(ValueError, NoAppException):
    """A setting that memflask cannot start with; the message names it.

    A ValueError to library callers and tests. A click usage error too, so that a click
    command meeting one (`flask run`, which re-raises what the app factory raised, and
    `memflask serve`) says it in one line and exits 2; Flask's own kind of it (the app
    could not be loaded), so that `flask --app memflask --help`, which loads the app to
    list its commands, prints "Error: <the message>" above the help instead of a
    traceback.
    """

    exit_code = 2

    def __init__(self, message: str):
        NoAppException.__init__(self, message)

    def line(self) -> str:
        """`memflask: bad setting: SIZE must be a whole number ..., got 'abc'`."""
        return f"memflask: bad setting: {self.message}"

    def show(self, file: Optional[IO[Any]] = None) -> None:
        print(self.line(), file=sys.stderr if file is None else file, flush=True)

    def exit(self) -> NoReturn:
        """Say it in one line on stderr and exit 2: for entry points outside click."""
        self.show()
        raise SystemExit(self.exit_code)


def load(
    config: Config,
    test_config: Optional[Mapping[str, Any]] = None,
    settings: Optional[Mapping[str, Any]] = None,
) -> None:
    """Fill `config` from every layer in order, then validate it.

    Test settings replace the instance config (a developer's instance/config.py never
    leaks into a test); `settings` (the CLI's options) come last.
    """
    config.from_mapping(DEFAULTS)
    if test_config is None:
        config.from_pyfile("config.py", silent=True)
        if "INSTANCE_PATH" in config:
            raise ConfigError(
                "INSTANCE_PATH cannot be set in instance/config.py, which is read from the "
                "instance folder: set MEMFLASK_INSTANCE_PATH or memflask serve --instance-path"
            )
    _from_original_environment(config, os.environ)
    config.from_prefixed_env("MEMFLASK")
    for name in TEXT_SETTINGS:
        if f"MEMFLASK_{name}" in os.environ:
            config[name] = os.environ[f"MEMFLASK_{name}"]
    if test_config is not None:
        config.from_mapping(test_config)
    if settings is not None:
        config.from_mapping(settings)
    # The folder in use, as instance_path() chose it (the Flask object was built with it).
    config["INSTANCE_PATH"] = config.root_path
    validate(config)


def instance_path(*layers: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The instance folder INSTANCE_PATH names, absolute; None for Flask's own rule.

    Read before any other setting, since instance/config.py is read from that folder:
    from the last of `layers` (create_app's test_config, then the CLI's settings) that
    names it, else MEMFLASK_INSTANCE_PATH. A relative path is taken from the working
    directory; an empty one means Flask's rule. A path to something other than a folder
    is a bad setting; a folder that does not exist yet is fine (a snapshot save makes it).
    """
    value: Any = os.environ.get("MEMFLASK_INSTANCE_PATH", "")
    for layer in layers:
        if layer is not None and layer.get("INSTANCE_PATH") is not None:
            value = layer["INSTANCE_PATH"]
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"INSTANCE_PATH must be a folder's path, got {value!r}")
    if not os.fspath(value):
        return None
    path = os.path.abspath(value)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"INSTANCE_PATH must be a folder (or not exist yet), got {value!r}")
    return path


def _from_original_environment(config: Config, environ: Mapping[str, str]) -> None:
    """Read the original server's names: PORT (`8000`, `:8000` or `host:8000`), APP_ENV, SIZE."""
    if "PORT" in environ:
        host, port = split_listen_address(environ["PORT"])
        config["PORT"] = port
        if host:
            config["HOST"] = host
    if "APP_ENV" in environ:
        config["APP_ENV"] = environ["APP_ENV"]
    if "SIZE" in environ:
        config["SIZE"] = environ["SIZE"]


def split_listen_address(text: str) -> tuple[str, str]:
    """Split `8000`, `:8000`, `host:8000` or `[::1]:8000` into host ('' if none) and port."""
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        return "", port
    return host.strip("[]"), port


def validate(config: Config) -> None:
    """Coerce whole-number settings and check every range; raise ConfigError naming the setting."""
    if isinstance(config["PORT"], str) and ":" in config["PORT"]:
        # MEMFLASK_PORT (or a test's PORT) in the original's `:8000` / `host:8000` forms.
        host, config["PORT"] = split_listen_address(config["PORT"])
        if host:
            config["HOST"] = host
    if config["THREADS"] is None:
        config["THREADS"] = default_threads(config["STORE_URL"])
    for name, (smallest, largest) in INTEGER_SETTINGS.items():
        config[name] = _whole_number(name, config[name], smallest, largest)
    if not isinstance(config["HOST"], str) or not config["HOST"]:
        raise ConfigError(f"HOST must be a host name or address, got {config['HOST']!r}")
    for name in ("SNAPSHOT_PATH", "TOKENS_FILE", "TLS_CERT", "TLS_KEY"):
        if not isinstance(config[name], str):
            raise ConfigError(f"{name} must be a file path, got {config[name]!r}")
    _check_tls_files(config)
    url = config["STORE_URL"]
    if backend_for(url) is None:
        raise ConfigError(
            "STORE_URL must be memory://, redis://host:port/db or "
            f"redis+cluster://host:port[,host:port...], got {url!r}"
        )
    if config["SNAPSHOT_PATH"] and not on_memory_store(url):
        raise ConfigError("SNAPSHOT_PATH is for the memory store; Redis keeps its own data")
    if config["EVICTION"] not in EVICTION_POLICIES:
        raise ConfigError(
            f"EVICTION must be one of {', '.join(EVICTION_POLICIES)}, got {config['EVICTION']!r}"
        )
    if config["EVICTION"] != "lru" and not on_memory_store(url):
        raise ConfigError(
            "EVICTION is for the memory store; on Redis, set its maxmemory-policy "
            "(allkeys-lfu is its scan-resistant one)"
        )
    if not isinstance(config["STORE_PREFIX"], str) or not config["STORE_PREFIX"]:
        raise ConfigError(
            f"STORE_PREFIX must be a non-empty string, got {config['STORE_PREFIX']!r}"
        )
    if not isinstance(config["APP_ENV"], str):
        raise ConfigError(f"APP_ENV must be a string, got {config['APP_ENV']!r}")
    for name in LIST_SETTINGS:
        config[name] = _text_list(name, config[name])
    token = config["TOKEN"]
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigError("TOKEN must be a non-empty string (unset it to turn the token off)")
    for name in BOOLEAN_SETTINGS:
        config[name] = _boolean(name, config[name])
    if config["CLOCK"] is not None and not callable(config["CLOCK"]):
        raise ConfigError(
            f"CLOCK must be a callable returning Unix seconds, got {config['CLOCK']!r}"
        )
    if config.get("MAX_CONTENT_LENGTH") is None:
        config["MAX_CONTENT_LENGTH"] = (
            BODY_BYTES_PER_VALUE_BYTE * config["MAX_VALUE_BYTES"] + BODY_OVERHEAD_BYTES
        )


def _check_tls_files(config: Config) -> None:
    if bool(config["TLS_CERT"]) != bool(config["TLS_KEY"]):
        raise ConfigError("TLS_CERT and TLS_KEY go together: give both (or neither)")
    for name in ("TLS_CERT", "TLS_KEY"):
        path = tls_path(config, name)
        if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(f"{name} must be a readable file (PEM), got {path}")


def tls_path(config: Mapping[str, Any], name: str) -> Optional[str]:
    """TLS_CERT's or TLS_KEY's file, absolute (relative: in the instance folder); None
    when unset."""
    if not config[name]:
        return None
    return os.path.join(config["INSTANCE_PATH"], config[name])


def on_memory_store(store_url: Any) -> bool:
    """Whether STORE_URL names the memory store: items held in this process, shared with
    no other (so one granian worker, one app slot, snapshots)."""
    backend = backend_for(store_url)
    return backend is not None and backend.in_process


def default_threads(store_url: Any) -> int:
    """waitress's worker threads when THREADS is not set: fewer where requests never wait."""
    return MEMORY_STORE_THREADS if on_memory_store(store_url) else SHARED_STORE_THREADS


def _text_list(name: str, value: Any) -> list[str]:
    """A comma-separated string or a list of strings, as a list of non-empty items."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{name} must be a comma-separated list of names, got {value!r}")
    return [item.strip() for item in items if item.strip()]


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word not in BOOLEAN_WORDS:
        raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), got {value!r}")
    return BOOLEAN_WORDS[word]


def _whole_number(name: str, value: Any, smallest: int, largest: int) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not smallest <= value <= largest:
        raise ConfigError(
            f"{name} must be a whole number from {smallest} to {largest}, got {value!r}"
        )
    return value
