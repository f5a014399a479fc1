"""MAX_BYTES bounds the process, not only the store's own count (README, "Memory").

Four clients write 5 MiB `/batch` requests of 100 KiB values into a 16 MiB cap: the
store never holds more than 16 MiB, and the server's RSS must not grow past
1.3 x MAX_BYTES + 32 MiB either (it grew by 71-76 MiB before the allocator settings:
request buffers kept by glibc's per-thread arenas).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from memflask import allocator
from tests.harness.servers import free_port, serving

MIB = 1024 * 1024
CAP = 16 * MIB
WRITERS = 4
BATCHES_PER_WRITER = 12
VALUE = "v" * (100 * 1024)
ITEMS_PER_BATCH = 51  # about 5 MiB of JSON


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def write_batches(port: int, writer: int, failures: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for batch in range(BATCHES_PER_WRITER):
            entries = [
                {"verb": "set", "key": f"w{writer}b{batch}i{item}", "value": VALUE}
                for item in range(ITEMS_PER_BATCH)
            ]
            connection.request(
                "POST", "/batch", json.dumps(entries), {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
                return
    finally:
        connection.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_rss_growth_stays_within_the_memory_formula() -> None:
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "APP_ENV": "production",
        "MEMFLASK_MAX_BYTES": str(CAP),
        "MEMFLASK_THREADS": str(WRITERS),
    }
    with serving([sys.executable, "-m", "memflask"], port, environment) as process:
        before = resident_mib(process.pid)
        failures: list = []
        writers = [
            threading.Thread(target=write_batches, args=(port, writer, failures))
            for writer in range(WRITERS)
        ]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in writers), "the writers did not finish"
        assert failures == []
        growth = resident_mib(process.pid) - before
        assert growth <= 1.3 * CAP / MIB + 32, f"RSS grew by {growth:.1f} MiB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_allocator_settings_are_taken_on_glibc() -> None:
    assert allocator.return_freed_memory()
