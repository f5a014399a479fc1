"""/metrics in Prometheus text format, through prometheus_client, one registry per app."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from memflask import create_app
from memflask.store import item_bytes
from memflask.web.metrics import RequestCollector


def scrape(client, headers=None) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_report_requests_by_verb_and_status_and_the_store(client, clock):
    client.get("/set?key=a&value=12")
    client.get("/set?key=b&value=1&ttl=1")
    client.get("/get?key=a")
    client.get("/get?key=nope")
    client.get("/get")  # 400
    clock.tick(1)
    client.get("/get?key=b")
    samples = scrape(client)
    assert samples[("memflask_requests_total", (("status", "204"), ("verb", "set")))] == 2
    assert samples[("memflask_requests_total", (("status", "200"), ("verb", "get")))] == 1
    assert samples[("memflask_requests_total", (("status", "404"), ("verb", "get")))] == 2
    assert samples[("memflask_requests_total", (("status", "400"), ("verb", "get")))] == 1
    count = ("memflask_request_duration_seconds_count", (("status", "204"), ("verb", "set")))
    assert samples[count] == 2
    assert samples[("memflask_hits_total", ())] == 1
    assert samples[("memflask_misses_total", ())] == 2
    assert samples[("memflask_expired_total", ())] == 1
    assert samples[("memflask_evictions_total", ())] == 0
    assert samples[("memflask_items", ())] == 1
    assert samples[("memflask_bytes", ())] == item_bytes("a", "12", None)


def test_each_app_has_its_own_registry(clock):
    first = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    second = create_app({"APP_ENV": "production", "CLOCK": clock}).test_client()
    first.get("/set?key=a&value=1")
    samples = scrape(second)
    assert not any(name == "memflask_requests_total" for name, _ in samples)
    assert samples[("memflask_items", ())] == 0


def test_metrics_need_the_token_and_healthz_does_not(clock):
    client = create_app({"APP_ENV": "production", "TOKEN": "t0ken", "CLOCK": clock}).test_client()
    assert client.get("/metrics").status_code == 401
    assert scrape(client, {"Authorization": "Bearer t0ken"})[("memflask_items", ())] == 0
    assert client.get("/healthz").status_code == 200


def test_latency_buckets_are_cumulative_and_count_up_to_their_bound():
    collector = RequestCollector()
    for seconds in (0.00005, 0.0001, 0.0002, 0.003, 5.0):
        collector.observe("get", 200, seconds)
    registry = CollectorRegistry()
    registry.register(collector)
    labels = {"verb": "get", "status": "200"}

    def bucket(bound: str) -> float:
        le = {**labels, "le": bound}
        return registry.get_sample_value("memflask_request_duration_seconds_bucket", le)

    assert bucket("0.0001") == 2  # 0.0001 itself is in the 0.0001 bucket (le: <=)
    assert bucket("0.00025") == 3
    assert bucket("0.005") == 4
    assert bucket("1.0") == 4
    assert bucket("+Inf") == 5
    assert registry.get_sample_value("memflask_request_duration_seconds_count", labels) == 5
    total = registry.get_sample_value("memflask_request_duration_seconds_sum", labels)
    assert total == pytest.approx(5.00335)


def test_requests_counted_from_many_threads_are_all_counted():
    collector = RequestCollector()
    threads, each = 8, 20_000

    def count() -> None:
        for _ in range(each):
            collector.observe("incr", 204, 0.0001)

    workers = [threading.Thread(target=count) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    registry = CollectorRegistry()
    registry.register(collector)
    value = registry.get_sample_value("memflask_requests_total", {"verb": "incr", "status": "204"})
    assert value == threads * each
