"""Load and soak against real waitress, bounded in count and time.

Run with `-s` to see the figures (the README quotes them).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Optional
from urllib.parse import urlencode

from tests.harness.servers import ROOT, free_port, wait_until_serving

THREADS = 8
OPERATIONS_PER_THREAD = 400
DEADLINE_SECONDS = 120
VALUES = ["a", "é", "x y", "&=+%", "€uro", "", "longer value " * 8]


class Worker:
    """One client thread: its own keys, checked against its own model after every answer."""

    def __init__(self, number: int, port: int):
        self.number = number
        self.random = random.Random(number)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.model: dict[str, str] = {}
        self.keys = [f"w{number}-{index}" for index in range(4)]
        self.counters = [f"w{number}-n{index}" for index in range(2)]
        self.sent: Counter[str] = Counter()
        self.hits = self.misses = self.shared_increments = 0
        self.failures: list[str] = []

    def call(self, verb: str, params: dict, json_body: Optional[list] = None):
        self.sent[verb] += 1
        if json_body is not None:
            body = json.dumps(json_body).encode()
            self.connection.request("POST", f"/{verb}", body, {"Content-Type": "application/json"})
        elif self.random.random() < 0.5:
            self.connection.request("GET", f"/{verb}?{urlencode(params)}")
        else:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            self.connection.request("POST", f"/{verb}", urlencode(params).encode(), headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status >= 500:
            self.failures.append(f"{verb} {params}: {response.status}")
        return response.status, body

    def expect(self, what: str, actual, expected) -> None:
        if actual != expected:
            self.failures.append(f"{what}: got {actual!r}, expected {expected!r}")

    def read(self, key: str):
        """Count the hit or miss a read of `key` makes."""
        if key in self.model:
            self.hits += 1
        else:
            self.misses += 1

    def step(self) -> None:
        key = self.random.choice(self.keys)
        value = self.random.choice(VALUES)
        present = key in self.model
        operation = self.random.randrange(15)
        if operation == 0:
            self.expect("set", self.call("set", {"key": key, "value": value})[0], 204)
            self.model[key] = value
        elif operation == 1:
            self.read(key)
            status, body = self.call("get", {"key": key})
            expected = (200, self.model[key].encode()) if present else 404
            self.expect("get", (status, body) if present else status, expected)
        elif operation == 2:
            self.expect("append", self.call("append", {"key": key, "value": value})[0], 204)
            self.model[key] = self.model.get(key, "") + value
        elif operation == 3:
            self.expect("prepend", self.call("prepend", {"key": key, "value": value})[0], 204)
            self.model[key] = value + self.model.get(key, "")
        elif operation == 4:
            counter = self.random.choice(self.counters)
            amount = self.random.randint(-5, 5)
            verb = self.random.choice(["increment", "decrement"])
            self.expect(verb, self.call(verb, {"key": counter, "value": amount})[0], 204)
            current = self.model.get(counter)
            sign = 1 if verb == "increment" else -1
            self.model[counter] = str(amount if current is None else int(current) + sign * amount)
        elif operation == 5:
            self.expect(
                "add", self.call("add", {"key": key, "value": value})[0], 409 if present else 204
            )
            self.model.setdefault(key, value)
        elif operation == 6:
            status = self.call("replace", {"key": key, "value": value})[0]
            self.expect("replace", status, 204 if present else 404)
            if present:
                self.model[key] = value
        elif operation == 7:
            self.expect("delete", self.call("delete", {"key": key})[0], 204)
            self.model.pop(key, None)
        elif operation == 8:
            status = self.call("touch", {"key": key, "ttl": 3600})[0]
            self.expect("touch", status, 204 if present else 404)
        elif operation == 9:
            self.read(key)
            status, body = self.call("gat", {"key": key, "ttl": 3600})
            expected = (200, self.model[key].encode()) if present else 404
            self.expect("gat", (status, body) if present else status, expected)
        elif operation == 10:
            self.expect("ttl", self.call("ttl", {"key": key})[0], 200 if present else 404)
        elif operation == 11:
            compare = self.model[key] if present and self.random.random() < 0.7 else "no match"
            status = self.call("checkandset", {"key": key, "value": value, "compare": compare})[0]
            matches = not present or self.model[key] == compare
            self.expect("checkandset", status, 204 if matches else 400)
            if matches:
                self.model[key] = value
        elif operation == 12:
            for each in self.keys:
                self.read(each)
            status, body = self.mget()
            expected = {k: v for k, v in self.model.items() if k in self.keys}
            self.expect("mget", (status, json.loads(body)), (200, expected))
        elif operation == 13:
            commands = [{"verb": "set", "key": key, "value": value}, {"verb": "get", "key": key}]
            self.sent.update(["set", "get"])
            self.hits += 1  # the get follows the set
            status, body = self.call("batch", {}, commands)
            self.expect(
                "batch",
                (status, json.loads(body)),
                (200, [{"status": 204}, {"status": 200, "value": value}]),
            )
            self.model[key] = value
        else:
            status = self.call("increment", {"key": "shared", "value": 1})[0]
            self.expect("shared increment", status, 204)
            self.shared_increments += status == 204

    def mget(self):
        self.sent["mget"] += 1
        query = "&".join(urlencode({"key": key}) for key in self.keys)
        self.connection.request("GET", f"/mget?{query}")
        response = self.connection.getresponse()
        return response.status, response.read()

    def run(self, deadline: float) -> None:
        try:
            for _ in range(OPERATIONS_PER_THREAD):
                if time.monotonic() > deadline:
                    self.failures.append("deadline passed")
                    return
                self.step()
        except Exception as error:  # reported as a failure of this worker
            self.failures.append(f"{type(error).__name__}: {error}")
        finally:
            self.connection.close()


def test_mixed_load_on_every_verb_loses_nothing(live_server):
    workers = [Worker(number, live_server.port) for number in range(THREADS)]
    deadline = time.monotonic() + DEADLINE_SECONDS
    started = time.monotonic()
    threads = [threading.Thread(target=worker.run, args=(deadline,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 10)
    elapsed = time.monotonic() - started
    failures = [failure for worker in workers for failure in worker.failures]
    assert failures == []

    # Every key of every worker holds exactly what its model says.
    model = {key: value for worker in workers for key, value in worker.model.items()}
    keys = sorted({key for worker in workers for key in worker.keys + worker.counters})
    status, _, body = live_server.request("GET", "/mget?" + urlencode([("key", k) for k in keys]))
    assert status == 200
    assert json.loads(body) == model

    # No increment lost or duplicated.
    shared = sum(worker.shared_increments for worker in workers)
    assert live_server.request("GET", "/get?key=shared")[2] == str(shared).encode()

    # /stats agrees with what was done.
    sent = sum((worker.sent for worker in workers), Counter())
    sent.update(["mget", "get", "stats"])
    stats = json.loads(live_server.request("GET", "/stats")[2])
    assert stats["commands"] == dict(sent)
    hits = sum(worker.hits for worker in workers) + len(model) + 1
    misses = sum(worker.misses for worker in workers) + len(keys) - len(model)
    assert (stats["hits"], stats["misses"]) == (hits, misses)
    assert stats["keyCount"] == len(model) + 1

    assert live_server.request("GET", "/flush")[0] == 204
    assert json.loads(live_server.request("GET", "/stats")[2])["keyCount"] == 0
    requests = sum(sent.values())
    print(
        f"\nmixed load: {requests} commands from {THREADS} threads in {elapsed:.1f} s, "
        f"errors: 0, lost writes: 0, shared increments: {shared}"
    )


# -- a write flood under a memory cap ----------------------------------------------------------

FLOOD_THREADS = 4
FLOOD_REQUESTS_PER_THREAD = 400
FLOOD_VALUE_BYTES = 128 * 1024
FLOOD_CAP_BYTES = 4 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_write_flood_under_a_memory_cap_keeps_memory_bounded():
    port = free_port()
    environment = {
        "PORT": str(port),
        "APP_ENV": "production",
        "PATH": os.environ.get("PATH", ""),
        "MEMFLASK_MAX_BYTES": str(FLOOD_CAP_BYTES),
    }
    process = subprocess.Popen([sys.executable, "-m", "memflask"], cwd=ROOT, env=environment)
    try:
        wait_until_serving(port, process)
        value = "v" * FLOOD_VALUE_BYTES
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def flood(number: int, requests: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            try:
                for index in range(requests):
                    body = urlencode({"key": f"f{number}-{index}", "value": value}).encode()
                    connection.request("POST", "/set", body, headers)
                    response = connection.getresponse()
                    response.read()
                    with lock:
                        statuses[response.status] += 1
            finally:
                connection.close()

        flood(99, 40)  # warm up: the cache fills to its cap once
        baseline = rss_bytes(process.pid)
        started = time.monotonic()
        threads = [
            threading.Thread(target=flood, args=(n, FLOOD_REQUESTS_PER_THREAD))
            for n in range(FLOOD_THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)
        elapsed = time.monotonic() - started
        peak = rss_bytes(process.pid)

        assert statuses == {204: 40 + FLOOD_THREADS * FLOOD_REQUESTS_PER_THREAD}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/stats")
        stats = json.loads(connection.getresponse().read())
        connection.close()
        assert stats["bytes"] <= FLOOD_CAP_BYTES
        assert stats["evictions"] > 0
        written = FLOOD_THREADS * FLOOD_REQUESTS_PER_THREAD * FLOOD_VALUE_BYTES
        # The flood writes 50x the cap; memory may grow by buffers and fragmentation,
        # never by what was written.
        assert peak - baseline < 64 * 1024 * 1024, (baseline, peak)
        print(
            f"\nwrite flood: {written / 2**20:.0f} MiB in {elapsed:.1f} s under a "
            f"{FLOOD_CAP_BYTES / 2**20:.0f} MiB cap; RSS {baseline / 2**20:.0f} -> "
            f"{peak / 2**20:.0f} MiB; cache bytes {stats['bytes']}, evictions {stats['evictions']}"
        )
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
