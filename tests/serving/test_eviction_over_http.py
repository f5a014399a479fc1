"""EVICTION end to end: the same requests to real waitress serving a SIZE-capped store under
each policy, get and set-on-miss through /batch, and the hit ratios /stats answers."""

from __future__ import annotations

import itertools
import json
import random

from memflask import create_app
from tests.harness.servers import LiveServer

SIZE = 2_000
KEYS = 20_000
GETS = 60_000
SCAN = 10_000
BATCH = 500


def requests() -> list[str]:
    """A Zipf(1.0) sequence of GETS reads over KEYS keys (a fixed seed), with two one-time
    scans of SCAN new keys at a third and two thirds of the way."""
    weights = list(itertools.accumulate(1 / rank for rank in range(1, KEYS + 1)))
    chosen = random.Random(7).choices(range(KEYS), cum_weights=weights, k=GETS)
    reads = [f"zipf:{number}" for number in chosen]
    third = GETS // 3
    return [
        *reads[:third],
        *(f"scan1:{number}" for number in range(SCAN)),
        *reads[third : 2 * third],
        *(f"scan2:{number}" for number in range(SCAN)),
        *reads[2 * third :],
    ]


def batch(server: LiveServer, commands: list[dict]) -> list[dict]:
    status, _, body = server.request(
        "POST", "/batch", json.dumps(commands).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, body
    return json.loads(body)


def hit_ratio_over_http(eviction: str) -> float:
    app = create_app({"APP_ENV": "production", "SIZE": SIZE, "EVICTION": eviction})
    sequence = requests()
    with LiveServer(app) as server:
        for start in range(0, len(sequence), BATCH):
            keys = sequence[start : start + BATCH]
            answers = batch(server, [{"verb": "get", "key": key} for key in keys])
            missed = [key for key, answer in zip(keys, answers) if answer["status"] == 404]
            if missed:
                batch(server, [{"verb": "set", "key": key, "value": "v"} for key in missed])
        _, _, body = server.request("GET", "/stats")
    stats = json.loads(body)
    assert stats["eviction"] == eviction
    assert stats["keyCount"] == SIZE
    assert stats["hits"] + stats["misses"] == len(sequence)
    return stats["hits"] / len(sequence)


def test_s3fifo_keeps_more_hits_than_lru_through_two_scans():
    lru, s3fifo = hit_ratio_over_http("lru"), hit_ratio_over_http("s3fifo")
    print(f"\nhit ratio over HTTP: lru {lru:.2%}, s3fifo {s3fifo:.2%}")
    # Measured here: lru 49.67%, s3fifo 54.36% to 54.43% (str hashes, so the ghost
    # table's collisions, vary from process to process).
    assert s3fifo - lru >= 0.025
