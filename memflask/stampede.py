"""get_or_set under a lease, written once for both clients as steps without I/O: the
client sends each request step, sleeps each pause, calls the computation when told, and
sends the result back in (Client drives them, AsyncClient awaits them).

On a cold or expired key many callers miss at once; the server gives one of them a lease
(GET /get?lease=) and tells the others when it ends (Retry-After). The holder computes,
writes under its lease and returns; the others poll with a growing pause, within the
lease's time, and find the value. If the holder dies, its lease runs out and the next
caller's read wins a new one. A stale value (invalidated, or expired within its `stale`
window) is answered at once to everyone but the one who refreshes it.
"""

from __future__ import annotations

import json
from typing import Any, Generator, NamedTuple, Optional, Union

from .answers import error_from_answer
from .calls import Call, Spread
from .protocol import lease_fill, one_command_batch

# A caller that waits for another's computation looks again after this pause, doubled
# each time up to WAIT_MOST (never past the lease's end, which the server tells).
WAIT_FIRST = 0.05
WAIT_MOST = 1.0
# The lease a caller asks for by default: the longest the computation may take before
# another caller may start it too.
DEFAULT_LEASE_SECONDS = 30


class Compute(NamedTuple):
    """Step: call the computation; its value (a str or an int) is sent back in."""


class Pause(NamedTuple):
    """Step: sleep this many seconds."""

    seconds: float


Step = Union[Spread, Call, Compute, Pause]


def lease_read_steps(key: str, lease: int) -> Generator[Step, Any, tuple[Any, Any]]:
    """The steps of a read that may take the key's lease: it returns (the value, None) on a
    hit, or a stale one while another caller refreshes it; (None, a lease token) when this
    caller is to compute it and write under the token; (None, None) when the server is set
    aside. While another caller holds the lease, it waits for the value."""
    wait = WAIT_FIRST
    while True:
        command = {"verb": "get", "key": key, "lease": lease}
        read = (yield one_command_batch(command))[0]
        status = read["status"]
        if "lease" in read:
            return None, read["lease"]  # a miss, or a stale value this caller refreshes
        if status == 200:
            return read["value"], None
        if status == 503 and read.get("error") == "unavailable":
            return None, None
        if status != 404 or "retryAfter" not in read:
            raise error_from_answer(status, json.dumps(read).encode())
        yield Pause(min(wait, float(read["retryAfter"])))
        wait = min(wait * 2, WAIT_MOST)


def get_or_set_steps(
    key: str, expire: int, lease: int, stale: Optional[int]
) -> Generator[Step, Any, Any]:
    """The steps of one get_or_set: it returns the stored value (a str) on a hit, or the
    value this caller computed (as the computation gave it)."""
    value, token = yield from lease_read_steps(key, lease)
    if value is not None:
        return value
    value = yield Compute()
    if token is not None:  # (none: the server is set aside; the value is not kept)
        # Refused (412) if another write came first, or the lease was let go: this value
        # stands for this caller all the same.
        yield lease_fill(key, value, expire, token, stale)
    return value
