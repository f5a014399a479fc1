"""HTTP request headers memflask reads: entity tags, `Prefer` and `Authorization`.

Plain functions on header strings, so any caller (the Flask view, a WSGI-level path,
a test) parses them the same way.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional, Protocol

from .errors import HeaderTooLong, PreconditionFailed


class Versioned(Protocol):
    """What a precondition is checked against: a stored item's version (the store's Item)."""

    @property
    def version(self) -> int: ...


# An entity tag in an If-Match or If-None-Match list, as findall reads it. `(?<!\s)`: a
# match may start where a run of whitespace starts, not inside it. findall tried every
# position, and each one inside a run rescanned the rest of the run before failing:
# quadratic (46 s of GIL for 40,000 spaces). A start inside a run would find just what the
# run's first position found, so the tags found are the same, in time linear in the header.
_ENTITY_TAG = re.compile(r'(?<!\s)\s*(W/)?"([^"]*)"\s*(?:,|$)')
# The longest If-Match or If-None-Match memflask parses, in characters: a client sends one
# tag (versions have at most 20 digits), and 8 KiB is the line nginx buffers by default
# (large_client_header_buffers). A longer one is refused (400), never cut: a cut
# If-None-Match could miss the tag it names and let a write through.
MAX_CONDITION_HEADER_CHARS = 8 * 1024
# RFC 6750 section 2.1: `Bearer` then a b64token. Read leniently as any visible ASCII, so
# a secret with '=' inside (`abc=def`) works too: the token is compared in constant time
# with the configured one, so what the parser admits never widens access.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([!-~]+)")


class Conditions(NamedTuple):
    """HTTP preconditions on an item's version, as parsed entity-tag sets (None: no header)."""

    if_match: Optional[frozenset[str]] = None
    if_none_match: Optional[frozenset[str]] = None

    @classmethod
    def from_headers(cls, if_match: Optional[str], if_none_match: Optional[str]) -> Conditions:
        if if_match is None and if_none_match is None:
            return NO_CONDITIONS  # most requests: nothing to parse
        return cls(
            _parse_entity_tags("If-Match", if_match, weak_matches=False),
            _parse_entity_tags("If-None-Match", if_none_match, weak_matches=True),
        )

    def check(self, current: Optional[Versioned]) -> None:
        """Raise PreconditionFailed unless a write may go ahead on `current`."""
        if self.if_match is not None and not _matches(self.if_match, current):
            raise PreconditionFailed("If-Match does not match the item's current version")
        if self.if_none_match is not None and _matches(self.if_none_match, current):
            raise PreconditionFailed("If-None-Match matches the item's current version")

    def not_modified(self, item: Versioned) -> bool:
        """Whether a read may answer 304: the client already holds this version."""
        return self.if_none_match is not None and _matches(self.if_none_match, item)


NO_CONDITIONS = Conditions()


def entity_tag(version: int) -> str:
    """Return the quoted ETag header value for an item version."""
    return f'"{version}"'


def _parse_entity_tags(
    name: str, header: Optional[str], weak_matches: bool
) -> Optional[frozenset[str]]:
    if header is None:
        return None
    if len(header) > MAX_CONDITION_HEADER_CHARS:
        raise HeaderTooLong(
            f"{name} is {len(header)} characters long; memflask reads at most "
            f"{MAX_CONDITION_HEADER_CHARS}"
        )
    if header.strip() == "*":
        return frozenset("*")
    return frozenset(tag for weak, tag in _ENTITY_TAG.findall(header) if weak_matches or not weak)


def _matches(tags: frozenset[str], item: Optional[Versioned]) -> bool:
    return item is not None and ("*" in tags or str(item.version) in tags)


def prefers_representation(prefer: Optional[str]) -> bool:
    """Whether `Prefer` asks for `return=representation` (the stored value in the answer)."""
    if not prefer:
        return False
    tokens = prefer.replace(";", ",").split(",")
    return any(token.strip().lower() == "return=representation" for token in tokens)


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    """The token of `Authorization: Bearer <token>`, or None when there is none."""
    if not authorization:
        return None
    match = _BEARER.fullmatch(authorization.strip())
    return match.group(1) if match else None
