"""Prometheus metrics, one registry per app (no global collectors shared between apps)."""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .store import STATS_METRICS, Store, StoreUnavailable

# A cache answers in well under a millisecond in-process; the default buckets start at 5 ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}


class StoreCollector(Collector):
    """The store's own counters (memflask.store.StoreStats), read at scrape time."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.store.stats()
        except StoreUnavailable:
            yield GaugeMetricFamily("memflask_store_up", "Whether the store answers.", value=0)
            return
        yield GaugeMetricFamily("memflask_store_up", "Whether the store answers.", value=1)
        for field, metric in STATS_METRICS.items():
            if metric.kind:
                yield FAMILIES[metric.kind](metric.name, metric.help, value=stats[field])


class Metrics:
    """Request counts and latency per verb and status, plus the store's counters."""

    def __init__(self, store: Store):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "memflask_requests",
            "Requests by verb and status.",
            ["verb", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "memflask_request_duration_seconds",
            "Time to answer, by verb and status.",
            ["verb", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StoreCollector(store))
        # (verb, status) -> the labelled counter and histogram: labels() takes a lock and
        # builds its key on every call, a measurable share of a request (bench/README.md).
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, verb: str, status: int, seconds: float) -> None:
        children = self._children.get((verb, status))
        if children is None:
            children = self._children.setdefault(
                (verb, status),
                (self.requests.labels(verb, status), self.latency.labels(verb, status)),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
