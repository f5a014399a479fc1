"""How many connections this process's open-file limit lets a server hold.

A server that accepts while no file descriptor is left gets EMFILE from accept() at once,
over and over: the connection waiting in the backlog keeps the listening socket ready.
waitress then spun at 100% CPU logging a traceback per turn (111,018 in 20 s with 256
open files and 300 clients), and granian answered none. A connection limit that fits
the open files stops accepting before that: the extra clients wait in the backlog until
a connection closes.
"""

from __future__ import annotations

import logging
import resource

# Descriptors the process holds besides its connections: stdio, the listening socket,
# waitress's trigger pipe, log and snapshot files, Redis connections (one per thread),
# the runtime's own (granian's event loop).
RESERVED_FDS = 64

log = logging.getLogger(__name__)


def connections_that_fit(wanted: int, fds_per_connection: int = 1) -> int:
    """Raise the open-file limit to what `wanted` connections need, or fit them to it.

    Returns `wanted` when the soft limit is (or could be raised) high enough; otherwise
    the connections the limit leaves room for (at least 1), with one warning line.
    """
    needed = wanted * fds_per_connection + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    except (ValueError, OSError):  # a platform that refuses it (macOS past OPEN_MAX)
        raised = soft
    if raised >= needed:
        return wanted
    fitted = max(1, (raised - RESERVED_FDS) // fds_per_connection)
    log.warning(
        "open files are limited to %d: serving at most %d connections instead of %d "
        "(raise the hard limit, ulimit -Hn, to %d for all of them)",
        raised,
        fitted,
        wanted,
        needed,
    )
    return fitted
