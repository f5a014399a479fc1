"""Access control: the Host allowlist, the bearer token, and no cross-site browser writes."""

from __future__ import annotations

import functools
from typing import Iterable, NamedTuple, Optional
from urllib.parse import urlsplit

from .errors import CrossSite, ForbiddenHost
from .tokens import Grant, TokenSet

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A DNS name has at most 253 characters (RFC 1035), an IPv6 literal with a zone far less;
# with ':65535' and some whitespace, no valid Host comes near this.
MAX_HOST_HEADER_CHARS = 300
# Sec-Fetch-Site values of a request another site made, compared in lower case: any
# spelling of them is refused (`SAME-SITE` passed as an unknown value).
OTHER_SITES = ("cross-site", "same-site")


class Access(NamedTuple):
    """Who may talk to this app; built once from the settings."""

    tokens: Optional[TokenSet]  # None: no token needed (neither TOKEN nor TOKENS_FILE)
    allowed_hosts: Optional[frozenset[str]]  # None: any host ("*")
    allowed_origins: frozenset[str]

    @classmethod
    def from_settings(
        cls, tokens: Optional[TokenSet], hosts: Iterable[str], origins: Iterable[str]
    ) -> Access:
        names = [host.lower() for host in hosts]
        allowed_hosts = None if "*" in names else frozenset(_bare_host(name) for name in names)
        return cls(tokens, allowed_hosts, frozenset(origin.rstrip("/") for origin in origins))

    def check_host(self, host_header: Optional[str]) -> None:
        """Refuse a Host that is not allowed: stops DNS rebinding from reaching the cache."""
        if self.allowed_hosts is None or host_header is None:
            return  # a client without a Host header is not a browser
        name = _host_name(host_header)
        if name is None or not _host_matches(name, self.allowed_hosts):
            raise ForbiddenHost(
                f"host {host_header[:100]!r} is not allowed; to serve it, add its name to "
                "MEMFLASK_ALLOWED_HOSTS (a comma list; '*' allows any host)"
            )

    def check_token(self, authorization: Optional[str]) -> Optional[Grant]:
        """What `Authorization: Bearer <token>` may do (Unauthorized without a valid
        token); None when no token is needed."""
        if self.tokens is None:
            return None
        return self.tokens.grant_for(authorization)

    def check_not_cross_site(self, origin: Optional[str], fetch_site: Optional[str]) -> None:
        """Refuse a write a browser sends for another site (CSRF), unless its Origin is allowed.

        `same-site` counts as another site: a page on another port of the same host
        (another localhost app) must not write either. An <img> sends no Origin, only
        Sec-Fetch-Site.
        """
        if origin is not None:
            allowed = "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins
        else:
            allowed = fetch_site is None or fetch_site.lower() not in OTHER_SITES
        if not allowed:
            raise CrossSite(
                f"a cross-site browser request (Origin {origin!r}) may not change data; "
                "to allow a site, add its origin to MEMFLASK_ALLOWED_ORIGINS"
            )


def _bare_host(host: str) -> str:
    """'[::1]' and '::1' name the same host; a leading '.' (any subdomain) is kept."""
    if host.startswith("."):
        return host
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _host_name(host_header: str) -> Optional[str]:
    """The lower-case host name of a `Host` header (IPv6 without brackets), or None if malformed.

    A Host longer than any host name and port is malformed, refused without parsing nor
    caching it: the cache below, and urlsplit's own (128 entries on Python 3.11 and later,
    20 before), then hold only short strings. They held every distinct 3 MiB Host
    refused, with its copies: RSS 34 -> 2,371 MiB for 300 requests, kept.
    """
    if len(host_header) > MAX_HOST_HEADER_CHARS:
        return None
    return _parsed_host_name(host_header)


@functools.lru_cache(maxsize=256)  # a handful of Host values in practice; bounded for the rest
def _parsed_host_name(host_header: str) -> Optional[str]:
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
    except ValueError:
        return None
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname or None


def _host_matches(name: str, allowed: frozenset[str]) -> bool:
    if name in allowed:
        return True
    return any(entry.startswith(".") and name.endswith(entry) for entry in allowed)
