"""`memflask serve --shards N`: N memory-store servers on consecutive ports, one process
each, so that one machine's cores all serve, for clients that spread keys over them
(memflask.placement), as memcached is run one process per core.

Each shard is `python -m memflask` with the same settings, but its port (PORT, PORT+1,
...) and, with SNAPSHOT_PATH, its own snapshot file (`<SNAPSHOT_PATH>.<shard>`). The
server list a client needs is printed on stderr. SIGTERM or SIGINT is passed on to every
shard, each stopping gracefully (in-flight requests answered, its snapshot saved); the
command exits 0 once all have, or 1 if a shard stopped on its own (the others are then
stopped too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, Mapping

from ..config import on_memory_store
from .common import read_settings

# How often the shards are looked at for one that stopped on its own.
POLL_SECONDS = 0.2


class ShardsRefused(ValueError):
    """Settings --shards cannot serve; the message says why."""


def shard_environments(overrides: Mapping[str, Any], shards: int) -> list[dict[str, str]]:
    """Each shard's environment: this one's, the command's settings, its port and file."""
    settings = read_settings(overrides)  # a bad setting: ConfigError, one line and exit 2
    if not on_memory_store(settings["STORE_URL"]):
        raise ShardsRefused(
            "shards are memory stores, each holding its own keys; with Redis every process "
            "shares one store: use --server granian --workers N"
        )
    if settings["PORT"] == 0 or settings["PORT"] + shards - 1 > 65535:
        raise ShardsRefused(f"the shards listen on PORT to PORT+{shards - 1}: give such a PORT")
    common = {f"MEMFLASK_{name}": str(value) for name, value in overrides.items()}
    environments = []
    for shard in range(shards):
        environment = {**os.environ, **common}
        environment["MEMFLASK_HOST"] = settings["HOST"]
        environment["MEMFLASK_PORT"] = str(settings["PORT"] + shard)
        if settings["SNAPSHOT_PATH"]:
            environment["MEMFLASK_SNAPSHOT_PATH"] = f"{settings['SNAPSHOT_PATH']}.{shard}"
        environments.append(environment)
    return environments


def server_list(environments: list[dict[str, str]]) -> str:
    host = environments[0]["MEMFLASK_HOST"]
    host = f"[{host}]" if ":" in host else host
    return ",".join(f"http://{host}:{each['MEMFLASK_PORT']}" for each in environments)


def serve_shards(overrides: Mapping[str, Any], shards: int) -> int:
    """Run the shards until a signal stops them; the exit status."""
    environments = shard_environments(overrides, shards)
    print(f"memflask: {shards} shards: {server_list(environments)}", file=sys.stderr, flush=True)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    children = [
        subprocess.Popen([sys.executable, "-m", "memflask"], env=environment)
        for environment in environments
    ]
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(POLL_SECONDS)
        lost = not stopping
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes = [child.wait() for child in children]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if lost:
        print("memflask: a shard stopped on its own; the others were stopped", file=sys.stderr)
        return 1
    return 0 if all(code == 0 for code in codes) else 1
