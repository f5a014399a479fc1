"""/metrics in Prometheus text format, through prometheus_client, one registry per app."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from memflask import create_app
from memflask.store import item_bytes


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
