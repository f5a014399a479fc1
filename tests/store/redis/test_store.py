"""The Redis backend beyond the shared contract suite: sharing, outages, namespacing."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from memflask import create_app
from tests.harness.servers import ROOT, free_port, start_redis_server, wait_until_serving


def call(port: int, target: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_two_processes_on_one_redis_share_the_cache_and_lose_no_increment(redis_url):
    prefix = f"two-{uuid.uuid4().hex}:"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "MEMFLASK_STORE_URL": redis_url,
        "MEMFLASK_STORE_PREFIX": prefix,
    }
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "memflask"], cwd=ROOT, env={**environment, "PORT": str(port)}
        )
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes):
            wait_until_serving(port, process)
        first, second = ports
        assert call(first, "/set?key=greeting&value=from-first")[0] == 204
        assert call(second, "/get?key=greeting") == (200, b"from-first")
        assert call(second, "/delete?key=greeting")[0] == 204
        assert call(first, "/get?key=greeting")[0] == 404

        per_thread, errors = 100, []

        def increment(port: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for _ in range(per_thread):
                    connection.request("GET", "/increment?key=counter&value=1")
                    response = connection.getresponse()
                    response.read()
                    if response.status != 204:
                        errors.append(response.status)
            finally:
                connection.close()

        threads = [threading.Thread(target=increment, args=(port,)) for port in ports * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert call(first, "/get?key=counter") == (200, str(len(threads) * per_thread).encode())
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        create_app({"STORE_URL": redis_url, "STORE_PREFIX": prefix}).test_client().get("/flush")


def test_flush_removes_only_memflasks_keys(redis_url):
    prefix = f"ns-{uuid.uuid4().hex}:"
    client = create_app(
        {"APP_ENV": "production", "STORE_URL": redis_url, "STORE_PREFIX": prefix}
    ).test_client()
    other = redis.Redis.from_url(redis_url)
    other.set("someone-else:key", "theirs")
    for start in range(0, 2500, 500):  # more than one SCAN batch
        batch = [{"verb": "set", "key": f"k{n}", "value": "1"} for n in range(start, start + 500)]
        assert client.post("/batch", json=batch).status_code == 200
    assert client.get("/stats").json["keyCount"] == 2500
    assert client.get("/flush").status_code == 204
    assert client.get("/stats").json["keyCount"] == 0
    assert other.get("someone-else:key") == b"theirs"
    other.delete("someone-else:key")
    other.close()


def test_redis_down_is_a_quick_503_and_recovers(redis_url):  # skips without redis-server
    port = free_port()
    server = start_redis_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = create_app(
            {"APP_ENV": "production", "STORE_URL": url, "STORE_TIMEOUT_MS": 500}
        ).test_client()
        deadline = time.monotonic() + 30
        while client.get("/set?key=k&value=v").status_code != 204:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        server.terminate()
        server.wait(timeout=30)

        started = time.monotonic()
        response = client.get("/get?key=k")
        assert response.status_code == 503
        assert response.json["error"] == "store_unavailable"
        assert time.monotonic() - started < 10  # a bound a hang would break, not a timing
        assert client.get("/set?key=k&value=w").status_code == 503
        metrics = client.get("/metrics").data.decode()
        assert "memflask_store_up 0.0" in metrics

        server = start_redis_server(port)
        deadline = time.monotonic() + 30
        while client.get("/set?key=k&value=back").status_code != 204:
            assert time.monotonic() < deadline, "no recovery after Redis came back"
            time.sleep(0.1)
        assert client.get("/get?key=k").data == b"back"
        assert "memflask_store_up 1.0" in client.get("/metrics").data.decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_redis_expiry_is_also_left_to_redis(redis_url):
    prefix = f"ttl-{uuid.uuid4().hex}:"
    app = create_app({"APP_ENV": "production", "STORE_URL": redis_url, "STORE_PREFIX": prefix})
    client, name = app.test_client(), app.extensions["memflask"].store._key("k")
    client.get("/set?key=k&value=v&ttl=100")
    remaining = redis.Redis.from_url(redis_url).pttl(name)
    assert 99_000 < remaining <= 100_000
    client.get("/set?key=k&value=v")
    assert redis.Redis.from_url(redis_url).pttl(name) == -1  # persistent now


def test_snapshots_are_for_the_memory_store_only(redis_url):
    from memflask.config import ConfigError

    with pytest.raises(ConfigError, match="SNAPSHOT_PATH"):
        create_app({"STORE_URL": redis_url, "SNAPSHOT_PATH": "x.json"})


def test_bad_store_url_stops_start_up():
    from memflask.config import ConfigError

    with pytest.raises(ConfigError, match="STORE_URL"):
        create_app({"STORE_URL": "mysql://localhost"})


def test_stats_on_redis_report_what_redis_knows(redis_url):
    client = create_app(
        {"APP_ENV": "production", "STORE_URL": redis_url, "STORE_PREFIX": f"st-{uuid.uuid4().hex}:"}
    ).test_client()
    client.get("/set?key=a&value=1")
    client.get("/get?key=a")
    client.get("/get?key=b")
    stats = client.get("/stats").json
    assert (stats["keyCount"], stats["hits"], stats["misses"]) == (1, 1, 1)
    assert stats["bytes"] > 0  # Redis's used_memory
    assert json.loads(json.dumps(stats))["commands"]["get"] == 2
