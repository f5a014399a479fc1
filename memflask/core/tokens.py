"""Scoped tokens, as Redis's ACL users over HTTP: each token a name, a key prefix and
rights (read, write or admin), kept in a tokens file that holds only their SHA-256.

The file (TOKENS_FILE) is JSON, written by `memflask token add/remove` (atomically,
mode 0600) and read by every server process at start and again, without a restart,
within RELOAD_SECONDS of a change:

    {"tokens": [{"name": "app1", "sha256": "<64 hex digits>", "prefix": "app1:",
                 "rights": "write"}]}

A token is 256 random bits (URL-safe base64), so its SHA-256 needs no salt or slow hash:
no one can guess a token from it, and a request's token is looked up by its SHA-256.
The TOKEN setting stays one admin token, compared in constant time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional

from .. import limits
from .errors import Unauthorized
from .headers import bearer_token

RIGHTS = ("read", "write", "admin")
# A tokens file this large is refused: 10,000 tokens take about 1.7 MB.
MAX_TOKENS_FILE_BYTES = 4 * 1024 * 1024
MAX_TOKENS = 10_000
# No key is longer than this: a longer prefix could match none.
MAX_PREFIX_BYTES = limits.MAX_KEY_BYTES
# A server looks at the tokens file this often (a stat), and reads it again if it changed.
RELOAD_SECONDS = 1.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

log = logging.getLogger("memflask.tokens")


class Grant(NamedTuple):
    """What a token may do: its keys start with `prefix`; `rights` read, write or admin."""

    name: str  # logged with each request ("": the TOKEN setting's)
    prefix: str
    rights: str

    @property
    def admin(self) -> bool:
        return self.rights == "admin"

    @property
    def writes(self) -> bool:
        return self.rights != "read"


# The TOKEN setting's token: everything, as before scoped tokens.
ADMIN = Grant("", "", "admin")


class TokenEntry(NamedTuple):
    """A line of the tokens file: a token's name, its SHA-256 (hex), prefix and rights."""

    name: str
    sha256: str
    prefix: str
    rights: str

    @property
    def grant(self) -> Grant:
        return Grant(self.name, self.prefix, self.rights)

    def listed(self) -> dict[str, str]:
        """As `memflask token list` shows it: never the hash."""
        return {"name": self.name, "prefix": self.prefix, "rights": self.rights}


class TokensFileError(ValueError):
    """A tokens file that cannot be read or is not one."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def read_tokens_file(path: Path) -> list[TokenEntry]:
    """The tokens in `path`, checked whole; TokensFileError says what is wrong."""
    try:
        # O_NONBLOCK: a FIFO put there does not block the server (as for snapshots).
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise TokensFileError(f"cannot open {path}: {error.strerror}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_TOKENS_FILE_BYTES:
        os.close(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise TokensFileError(f"{path} is not a regular file")
        raise TokensFileError(f"{path} is over {MAX_TOKENS_FILE_BYTES} bytes")
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(MAX_TOKENS_FILE_BYTES + 1)
    if len(data) > MAX_TOKENS_FILE_BYTES:
        raise TokensFileError(f"{path} is over {MAX_TOKENS_FILE_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise TokensFileError(f"{path} is not UTF-8 JSON: {error}") from None
    return _entries_of(document, path)


def _entries_of(document: Any, path: Path) -> list[TokenEntry]:
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, list) or set(document) != {"tokens"}:
        raise TokensFileError(f'{path} must be {{"tokens": [...]}}')
    if len(tokens) > MAX_TOKENS:
        raise TokensFileError(f"{path} holds more than {MAX_TOKENS} tokens")
    entries = [_entry_of(number, token, path) for number, token in enumerate(tokens)]
    for field in ("name", "sha256"):
        values = [getattr(entry, field) for entry in entries]
        if len(set(values)) != len(values):
            raise TokensFileError(f"{path}: two tokens have the same {field}")
    return entries


def _entry_of(number: int, token: Any, path: Path) -> TokenEntry:
    where = f"{path}, token {number}"
    if not isinstance(token, dict) or set(token) != set(TokenEntry._fields):
        raise TokensFileError(f"{where}: needs exactly {', '.join(TokenEntry._fields)}")
    entry = TokenEntry(**token)
    if not isinstance(entry.name, str) or not _NAME.fullmatch(entry.name):
        raise TokensFileError(f"{where}: a name is 1 to 64 of A-Z a-z 0-9 _ . -")
    if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
        raise TokensFileError(f"{where}: sha256 is 64 lower-case hex digits")
    check_prefix(entry.prefix, where)
    if entry.rights not in RIGHTS:
        raise TokensFileError(f"{where}: rights are one of {', '.join(RIGHTS)}")
    return entry


def check_prefix(prefix: Any, where: str) -> None:
    if (
        not isinstance(prefix, str)
        or len(prefix.encode("utf-8", "surrogatepass")) > MAX_PREFIX_BYTES
    ):
        raise TokensFileError(
            f"{where}: a prefix is a string of at most {MAX_PREFIX_BYTES} UTF-8 bytes"
        )


def write_tokens_file(path: Path, entries: list[TokenEntry]) -> None:
    """Replace `path` with `entries` at once (a reader sees the old file or the new one),
    readable by its owner only."""
    document = {"tokens": [entry._asdict() for entry in entries]}
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tokens-")  # 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_token(path: Path, name: str, prefix: str, rights: str) -> str:
    """Add a new random token to the tokens file (made if absent); return the token,
    which the file never holds."""
    entry = TokenEntry(name, token_hash(token := new_token()), prefix, rights)
    with _changing(path) as entries:
        if any(known.name == name for known in entries):
            raise TokensFileError(f"a token named {name!r} exists: remove it first")
        entries.append(_entry_of(len(entries), entry._asdict(), path))
        if len(entries) > MAX_TOKENS:
            raise TokensFileError(f"{path} would hold more than {MAX_TOKENS} tokens")
    return token


def remove_token(path: Path, name: str) -> bool:
    """Remove the token named `name`; False if there is none."""
    with _changing(path) as entries:
        kept = [entry for entry in entries if entry.name != name]
        removed = len(kept) != len(entries)
        entries[:] = kept
    return removed


@contextlib.contextmanager
def _changing(path: Path) -> Iterator[list[TokenEntry]]:
    """The file's tokens to change in place, written back at once; one change at a time
    (an exclusive lock on `<path>.lock`), so two `memflask token` runs lose neither."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600), "wb") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        entries = read_tokens_file(path) if path.exists() else []
        before = list(entries)
        yield entries
        if entries != before:
            write_tokens_file(path, entries)


class TokenSet:
    """The tokens a server takes: TOKEN's (admin) and the tokens file's, read again when
    the file changes (a file that cannot be read then keeps the last good set, one log
    line)."""

    def __init__(self, admin_token: Optional[str], path: Optional[Path]):
        self._admin = admin_token.encode("utf-8") if admin_token else None
        self.path = path
        self._by_digest: dict[str, TokenEntry] = {}
        self._seen: Optional[tuple[int, int, int]] = None
        if path is not None:
            self._by_digest = _by_digest(read_tokens_file(path))  # at start: bad is an error
            self._seen = _signature(path)
        self._next_look = time.monotonic() + RELOAD_SECONDS
        self._lock = threading.Lock()

    def grant_for(self, authorization: Optional[str]) -> Grant:
        """The grant of `Authorization: Bearer <token>`; Unauthorized for none or another."""
        given = bearer_token(authorization)
        if given is not None:
            if self._admin is not None and hmac.compare_digest(
                given.encode("utf-8", "surrogatepass"), self._admin
            ):
                return ADMIN
            if self.path is not None:
                self._look_again()
                # Looked up by its SHA-256: how long a lookup takes tells nothing of a
                # token (to match a stored digest takes a preimage), and costs one step
                # whatever the number of tokens.
                found = self._by_digest.get(token_hash(given))
                if found is not None:
                    return found.grant
        raise Unauthorized("this server needs 'Authorization: Bearer <token>' (a valid token)")

    def _look_again(self) -> None:
        """Read the file again if it changed, at most once every RELOAD_SECONDS."""
        if time.monotonic() < self._next_look or not self._lock.acquire(blocking=False):
            return  # another thread is looking: use the set as it is
        try:
            self._next_look = time.monotonic() + RELOAD_SECONDS
            assert self.path is not None
            try:
                signature = _signature(self.path)
                if signature == self._seen:
                    return
                self._seen = signature
                self._by_digest = _by_digest(read_tokens_file(self.path))
            except (OSError, TokensFileError) as error:
                log.warning("tokens file: %s; the last good tokens are kept", error)
        finally:
            self._lock.release()


def _by_digest(entries: list[TokenEntry]) -> dict[str, TokenEntry]:
    return {entry.sha256: entry for entry in entries}


def _signature(path: Path) -> tuple[int, int, int]:
    """What changes when the file is rewritten (os.replace gives a new inode)."""
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size, status.st_ino
