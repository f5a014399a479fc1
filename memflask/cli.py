"""The `memflask` command: `memflask serve`, get/set/delete/incr/decr/stats/flush, and
`memflask token add/list/remove`.

Exit codes scripts can rely on: 0 done; 1 the key is absent (get); 2 bad usage or a bad
setting; 3 the server refused the request (4xx); 4 no usable answer (down, 5xx, late past
--timeout, cut short, or over --max-answer-bytes).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import click
from flask import Flask

from . import __version__, config
from .app import create_app
from .client import DEFAULT_MAX_ANSWER_BYTES, Client, MemflaskError
from .config import DEFAULTS, INTEGER_SETTINGS
from .core.tokens import RIGHTS, TokensFileError, add_token, read_tokens_file, remove_token
from .serving.waitress import CannotListen
from .serving.waitress import serve as serve_app

ABSENT, REFUSED, UNAVAILABLE = 1, 3, 4


@click.group()
@click.version_option(__version__, message="memflask %(version)s")
def main() -> None:
    """memflask: an in-memory key/value cache server over HTTP."""


def _setting_options(command: Callable) -> Callable:
    """One option per setting (--size, --max-bytes, ...); unset ones keep config and env."""
    for name in reversed([name for name in DEFAULTS if name != "CLOCK"]):
        kind = int if name in INTEGER_SETTINGS else str
        option = f"--{name.lower().replace('_', '-')}"
        command = click.option(
            option,
            name.lower(),
            type=kind,
            default=None,
            help=f"{name} (default {DEFAULTS[name]!r})",
        )(command)
    return command


@main.command()
@click.option(
    "--server",
    type=click.Choice(["waitress", "granian"]),
    default="waitress",
    show_default=True,
    help="The HTTP server; granian needs the extra: pip install 'memflask[granian]'.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="granian worker processes; more than 1 needs a Redis store (STORE_URL).",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Memory-store servers on PORT, PORT+1, ...: one process each, for clients that "
    "spread keys over them (README, Several servers).",
)
@click.option(
    "--instance-path",
    default=None,
    help="The instance folder (its config.py, a relative SNAPSHOT_PATH); relative: from "
    "the working directory [env: MEMFLASK_INSTANCE_PATH; default: see README, Settings].",
)
@_setting_options
def serve(server: str, workers: int, shards: int, **settings: Any) -> None:
    """Serve until SIGTERM or SIGINT (then finish requests in flight)."""
    overrides = {name.upper(): value for name, value in settings.items() if value is not None}
    if shards > 1:
        _serve_shards(overrides, shards, server)
        return
    if server == "granian":
        _serve_with_granian(overrides, workers)
        return
    if workers != 1:
        raise click.UsageError("--workers is for --server granian (waitress runs one process)")
    app = create_app(settings=overrides)  # a bad setting: ConfigError, one line and exit 2
    try:
        serve_app(app)
    except CannotListen as error:
        raise click.ClickException(str(error)) from None


def _serve_shards(overrides: dict[str, Any], shards: int, server: str) -> None:
    if server != "waitress":
        raise click.UsageError("--shards runs waitress processes (one each)")
    from .serving.shards import ShardsRefused, serve_shards

    try:
        sys.exit(serve_shards(overrides, shards))
    except ShardsRefused as error:
        raise click.UsageError(f"--shards {shards}: {error}") from None


def _serve_with_granian(overrides: dict[str, Any], workers: int) -> None:
    if importlib.util.find_spec("granian") is None:
        raise click.UsageError("--server granian needs granian: pip install 'memflask[granian]'")
    from .serving import granian as granian_server

    try:
        granian_server.serve(overrides, workers)
    except granian_server.WorkersRefused as error:
        raise click.UsageError(f"--workers {workers}: {error}") from None


def _client_options(command: Callable) -> Callable:
    """--url, --token, --ca-file, --timeout and --max-answer-bytes: the command's
    Client(**options)."""
    command = click.option(
        "--max-answer-bytes",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_ANSWER_BYTES,
        show_default=True,
        help="The largest answer read; a larger one is refused (exit 4).",
    )(command)
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        help="Seconds the whole call may take, connecting to the answer's last byte.",
    )(command)
    command = click.option(
        "--token", envvar="MEMFLASK_TOKEN", default=None, help="Bearer token [env: MEMFLASK_TOKEN]."
    )(command)
    command = click.option(
        "--ca-file",
        envvar="MEMFLASK_CA_FILE",
        default=None,
        type=click.Path(exists=True, dir_okay=False),
        help="For https:// servers: the CA certificates (PEM) to verify them by, in place of "
        "the system's [env: MEMFLASK_CA_FILE].",
    )(command)
    return click.option(
        "--url",
        envvar="MEMFLASK_URL",
        multiple=True,
        default=["http://127.0.0.1:8000"],
        show_default=True,
        callback=_check_urls,
        help="The server; given several times (or separated by commas), the servers the "
        "keys are spread over, as memflask.client.Client spreads them [env: MEMFLASK_URL].",
    )(command)


def _check_urls(
    context: click.Context, parameter: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    urls = [url.strip() for value in values for url in value.split(",") if url.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(
                f"{url!r} is not a server URL: give one such as http://127.0.0.1:8000"
            )
    if not urls:
        raise click.BadParameter("give a server URL, such as http://127.0.0.1:8000")
    if len({url.rstrip("/") for url in urls}) != len(urls):
        raise click.BadParameter(f"a server is given twice: {urls}")
    return urls


def _talk(options: dict[str, Any], action: Callable[[Client], Any]) -> Any:
    """Run `action` with a Client(**options); turn refusals into the documented exit codes:
    a 4xx is refused (3); no answer, a late, cut or oversized one is unavailable (4)."""
    with Client(**options) as client:
        try:
            return action(client)
        except MemflaskError as error:
            click.echo(f"memflask: {error.message} ({error.status} {error.code})", err=True)
            sys.exit(REFUSED if 400 <= error.status < 500 else UNAVAILABLE)


@main.command()
@click.argument("key")
@_client_options
def get(key: str, **options: Any) -> None:
    """Print the value of KEY; exit 1 when it is absent."""
    value = _talk(options, lambda client: client.get(key))
    if value is None:
        sys.exit(ABSENT)
    click.echo(value)


@main.command(name="set")
@click.argument("key")
@click.argument("value")
@click.option("--expire", type=int, default=0, help="Seconds from now; 0: never.")
@_client_options
def set_(key: str, value: str, expire: int, **options: Any) -> None:
    """Store VALUE under KEY."""
    _talk(options, lambda client: client.set(key, value, expire=expire))


@main.command()
@click.argument("key")
@_client_options
def delete(key: str, **options: Any) -> None:
    """Remove KEY."""
    _talk(options, lambda client: client.delete(key))


@main.command()
@click.argument("key")
@_client_options
def invalidate(key: str, **options: Any) -> None:
    """Make KEY's value stale (plain reads miss it; lease readers get it until one of them
    refreshes it); exit 1 when it is absent."""
    if not _talk(options, lambda client: client.invalidate(key)):
        sys.exit(ABSENT)


@main.command()
@click.argument("key")
@click.argument("amount", type=int, default=1)
@_client_options
def incr(key: str, amount: int, **options: Any) -> None:
    """Add AMOUNT (default 1) to KEY's integer and print the result."""
    click.echo(_talk(options, lambda client: client.incr(key, amount)))


@main.command()
@click.argument("key")
@click.argument("amount", type=int, default=1)
@_client_options
def decr(key: str, amount: int, **options: Any) -> None:
    """Subtract AMOUNT (default 1) from KEY's integer and print the result."""
    click.echo(_talk(options, lambda client: client.decr(key, amount)))


@main.command()
@_client_options
def stats(**options: Any) -> None:
    """Print the server's statistics as JSON."""
    click.echo(json.dumps(_talk(options, lambda client: client.stats()), indent=2))


@main.command()
@click.option("--prefix", default="", help="Only keys that start with this; prints how many.")
@_client_options
def flush(prefix: str, **options: Any) -> None:
    """Remove every key, or with --prefix only the keys that start with it."""
    if prefix:
        click.echo(_talk(options, lambda client: client.delete_prefix(prefix)))
    else:
        _talk(options, lambda client: client.flush_all())


@main.command()
@click.option("--prefix", default="", help="Only keys that start with this.")
@_client_options
def keys(prefix: str, **options: Any) -> None:
    """Print the keys (that start with --prefix), one a line, following the cursor."""

    def print_keys(client: Client) -> None:
        for key in client.iter_keys(prefix, limit=1000):
            click.echo(key)

    _talk(options, print_keys)


@main.group()
def token() -> None:
    """Scoped tokens: each one a name, a key prefix and rights, kept in TOKENS_FILE
    (MEMFLASK_TOKENS_FILE, or --file; relative: in the instance folder) as SHA-256 only.
    A running server takes a change within a second or two."""


def _tokens_file(option: Optional[str]) -> Path:
    try:
        instance = config.instance_path()
        settings = Flask("memflask", instance_relative_config=True, instance_path=instance)
        config.load(settings.config, None, {"TOKENS_FILE": option} if option else None)
    except config.ConfigError as error:
        raise click.UsageError(str(error)) from None
    if not settings.config["TOKENS_FILE"]:
        raise click.UsageError("set TOKENS_FILE (MEMFLASK_TOKENS_FILE) or give --file")
    return Path(settings.instance_path) / settings.config["TOKENS_FILE"]


_FILE_OPTION = click.option("--file", "tokens_file", help="The tokens file (TOKENS_FILE).")


@token.command(name="add")
@click.argument("name")
@click.option("--prefix", default="", help="The keys it may touch start with this.")
@click.option("--rights", type=click.Choice(RIGHTS), required=True)
@_FILE_OPTION
def token_add(name: str, prefix: str, rights: str, tokens_file: Optional[str]) -> None:
    """Make a token NAME and print it, once, as the last line (the file keeps its hash)."""
    path = _tokens_file(tokens_file)
    try:
        secret = add_token(path, name, prefix, rights)
    except TokensFileError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"token {name!r} added to {path}: prefix {prefix!r}, rights {rights}")
    click.echo(secret)


@token.command(name="list")
@_FILE_OPTION
def token_list(tokens_file: Optional[str]) -> None:
    """Print each token's name, prefix and rights (never a hash), as JSON lines."""
    path = _tokens_file(tokens_file)
    try:
        entries = read_tokens_file(path) if path.exists() else []
    except TokensFileError as error:
        raise click.UsageError(str(error)) from None
    for entry in entries:
        click.echo(json.dumps(entry.listed(), ensure_ascii=False))


@token.command(name="remove")
@click.argument("name")
@_FILE_OPTION
def token_remove(name: str, tokens_file: Optional[str]) -> None:
    """Remove the token NAME; exit 1 if there is none."""
    try:
        removed = remove_token(_tokens_file(tokens_file), name)
    except TokensFileError as error:
        raise click.UsageError(str(error)) from None
    if not removed:
        sys.exit(ABSENT)


if __name__ == "__main__":
    main()
