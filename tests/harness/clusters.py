"""Real Redis Clusters for the tests: redis-server nodes on free loopback ports (each
node's bus port, +10000, free too), joined by `redis-cli --cluster create`, with nothing
written outside the folder given; every wait is bounded.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import redis

from tests.harness.servers import free_port

NODE_TIMEOUT_MS = 3000


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free port pair for a cluster node")


def wait_for(condition, seconds: float, what: str) -> float:
    """Poll `condition` until true (at most `seconds`); return the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except (redis.exceptions.RedisError, OSError):
            pass
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.1)


class Cluster:
    """redis-server nodes joined by `redis-cli --cluster create`."""

    def __init__(self, directory: Path, masters: int, replicas: int):
        self.ports = [cluster_port() for _ in range(masters * (1 + replicas))]
        self.processes: dict[int, subprocess.Popen] = {}
        for port in self.ports:
            self.processes[port] = subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(directory),
                ],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        for port in self.ports:
            wait_for(lambda port=port: self.node(port).ping(), 30, "a node did not start")
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *[f"127.0.0.1:{port}" for port in self.ports],
                "--cluster-replicas", str(replicas),
                "--cluster-yes",
            ],
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.ready, 30, "the cluster did not come up")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5, single_connection_client=True)

    def ask(self, port: int, *command: str):
        connection = self.node(port)
        try:
            return connection.execute_command(*command)
        finally:
            connection.close()

    def alive(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def ready(self) -> bool:
        for port in self.alive():
            info = self.ask(port, "CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_slots_ok:16384" not in text:
                return False
        return True

    def masters(self) -> list[int]:
        return [port for port in self.alive() if self.ask(port, "ROLE")[0] == b"master"]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            process.wait(timeout=30)


@contextmanager
def cluster(tmp_path: Path, masters: int, replicas: int) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("the Redis Cluster tests need redis-server and redis-cli")
    started = Cluster(tmp_path, masters, replicas)
    try:
        yield started
    finally:
        started.stop()
