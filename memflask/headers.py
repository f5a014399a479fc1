"""HTTP request headers memflask reads: entity tags, `Prefer` and `Authorization`.

Plain functions on header strings, so any caller (the Flask view, a WSGI-level path,
a test) parses them the same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple, Optional

from .errors import PreconditionFailed

if TYPE_CHECKING:
    from .store import Item

_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
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
            _parse_entity_tags(if_match, weak_matches=False),
            _parse_entity_tags(if_none_match, weak_matches=True),
        )

    def check(self, current: Optional[Item]) -> None:
        """Raise PreconditionFailed unless a write may go ahead on `current`."""
        if self.if_match is not None and not _matches(self.if_match, current):
            raise PreconditionFailed("If-Match does not match the item's current version")
        if self.if_none_match is not None and _matches(self.if_none_match, current):
            raise PreconditionFailed("If-None-Match matches the item's current version")

    def not_modified(self, item: Item) -> bool:
        """Whether a read may answer 304: the client already holds this version."""
        return self.if_none_match is not None and _matches(self.if_none_match, item)


NO_CONDITIONS = Conditions()


def entity_tag(version: int) -> str:
    """Return the quoted ETag header value for an item version."""
    return f'"{version}"'


def _parse_entity_tags(header: Optional[str], weak_matches: bool) -> Optional[frozenset[str]]:
    if header is None:
        return None
    if header.strip() == "*":
        return frozenset("*")
    return frozenset(tag for weak, tag in _ENTITY_TAG.findall(header) if weak_matches or not weak)


def _matches(tags: frozenset[str], item: Optional[Item]) -> bool:
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
