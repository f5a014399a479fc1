"""Which of several memflask servers holds a key: rendezvous (highest random weight)
hashing, specified exactly so that a client in any language places keys the same way.

For each server, the weight of `key` on it is the first 8 bytes, read as an unsigned
big-endian integer, of BLAKE2b (RFC 7693, an 8-byte digest, no key, no salt) of

    UTF-8(server) + b"\\n" + UTF-8(key)

where `server` is the server's URL as configured, without a trailing "/" (lone
surrogates in a key are encoded as Python's "surrogatepass" does). The key goes to the
server of the highest weight; on a tie, to the server whose URL's UTF-8 bytes sort first.
Adding a server to N moves only the keys it now weighs highest: about 1/(N+1) of them;
removing one moves only its own keys. The README lists test vectors.

Imports nothing but the standard library, so any client can use it.
"""

from __future__ import annotations

import hashlib
from typing import Sequence


def weight(server: str, key: str) -> int:
    """The weight of `key` on `server` (see the module's doc)."""
    data = server.encode("utf-8") + b"\n" + key.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def server_for(key: str, servers: Sequence[str]) -> str:
    """The server among `servers` (URLs without a trailing "/") that holds `key`."""
    if not servers:
        raise ValueError("no server to place the key on")
    best, best_weight = servers[0], weight(servers[0], key)
    for server in servers[1:]:
        server_weight = weight(server, key)
        if server_weight > best_weight or (
            server_weight == best_weight and server.encode() < best.encode()
        ):
            best, best_weight = server, server_weight
    return best
