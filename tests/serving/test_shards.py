"""`memflask serve --shards N` (memflask/serving/shards.py): N memory-store processes on
consecutive ports, which a client given their list spreads its keys over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from memflask.client import Client
from tests.harness.servers import ROOT, free_port, wait_until_serving


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise AssertionError("no consecutive free ports")


def memflask_serve(*arguments: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    environment = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "production"}
    return subprocess.Popen(
        [sys.executable, "-m", "memflask.cli", "serve", *arguments],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def test_shards_serve_a_spread_and_stop_with_their_snapshots_saved(tmp_path):
    first = free_ports(3)
    log = tmp_path / "stderr"
    with open(log, "w") as stderr:
        process = memflask_serve(
            "--shards",
            "3",
            "--port",
            str(first),
            "--snapshot-path",
            str(tmp_path / "snap"),
            stderr=stderr,
        )
    try:
        for port in range(first, first + 3):
            wait_until_serving(port, process)
        urls = [f"http://127.0.0.1:{port}" for port in range(first, first + 3)]
        assert f"memflask: 3 shards: {','.join(urls)}" in log.read_text()
        with Client(urls) as cache:
            assert cache.set_many({f"k{number}": str(number) for number in range(90)}) == []
            stats = cache.stats()
        assert stats["keyCount"] == 90
        assert all(shard["keyCount"] > 0 for shard in stats["servers"].values())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    saved = [json.loads((tmp_path / f"snap.{shard}").read_text()) for shard in range(3)]
    assert sum(len(snapshot["items"]) for snapshot in saved) == 90


@pytest.mark.parametrize(
    "arguments",
    [
        ["--shards", "2", "--port", "0"],
        ["--shards", "2", "--store-url", "redis://127.0.0.1:1/0"],
        ["--shards", "2", "--server", "granian"],
        ["--shards", "0"],
    ],
    ids=["port-0", "redis", "granian", "zero"],
)
def test_what_shards_cannot_serve_is_refused_in_one_line(arguments):
    process = memflask_serve(*arguments)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "Traceback" not in stderr and "--shards" in stderr
