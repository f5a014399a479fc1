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
from .protocol import Call, Spread, one_command_batch

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


def get_or_set_steps(
    key: str, expire: int, lease: int, stale: Optional[int]
) -> Generator[Step, Any, Any]:
    """The steps of one get_or_set: it returns the stored value (a str) on a hit, or the
    value this caller computed (as the computation gave it)."""
    wait = WAIT_FIRST
    while True:
        command = {"verb": "get", "key": key, "lease": lease}
        read = (yield one_command_batch(command))[0]
        status = read["status"]
        if status == 200 and "lease" not in read:
            return read["value"]  # fresh, or stale while another caller refreshes it
        if "lease" in read:  # this caller refreshes it
            value = yield Compute()
            fields = {"key": key, "value": value, "ttl": expire, "lease": read["lease"]}
            if stale is not None:
                fields["stale"] = stale
            # 412: another write came first (or the lease was let go): this value stands.
            yield Call("set", _filled, fields, allowed=(412,), missing=False)
            return value
        if status == 503 and read.get("error") == "unavailable":
            return (yield Compute())  # the server is set aside: compute, keep nothing
        if status != 404 or "retryAfter" not in read:
            raise error_from_answer(status, json.dumps(read).encode())
        yield Pause(min(wait, float(read["retryAfter"])))
        wait = min(wait * 2, WAIT_MOST)


def _filled(status: int, body: bytes) -> bool:
    return status != 412
