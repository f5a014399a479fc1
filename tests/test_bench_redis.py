"""The bench's Redis section: its own throwaway redis-server, the figures the issue asks
for, and targets judged from the same run's measures (no timing is asserted here)."""

from __future__ import annotations

import os
import shutil

import pytest
import redis

from bench.http_bench import Measure, scenarios
from bench.redis_bench import (
    LAYOUTS,
    REDIS_SCENARIOS,
    RedisResult,
    RedisServer,
    measure_redis,
    print_section,
    redis_rows,
    total,
)
from bench.targets import REDIS_GOALS, redis_verdicts


def test_the_redis_section_plans_the_issue_s_figures():
    assert set(REDIS_GOALS) == set(REDIS_SCENARIOS) == {"/get hit", "/set"}
    assert set(REDIS_SCENARIOS) <= {scenario.name for scenario in scenarios()}


def test_processes_measured_at_once_add_up():
    both = total([Measure(1000.0, 1.0, 5.0), Measure(1500.0, 2.0, 4.0)])
    assert both == Measure(2500.0, 2.0, 5.0)


def test_each_row_is_judged_against_the_memory_store_and_one_process():
    assert redis_verdicts("/get hit", 0.61, 1.3) == [
        "vs memory >= 0.6: met",
        "2 processes > 1: met",
    ]
    assert redis_verdicts("/set", 0.49, 1.0) == [
        "vs memory >= 0.5: MISSED",
        "2 processes > 1: MISSED",
    ]


def test_the_table_carries_the_ratios_from_the_same_run():
    figures = {"memory": 1000.0, "redis-1": 700.0, "redis-2": 1050.0}
    measures = {
        (scenario, "waitress", layout): Measure(figures[layout], 1.0, 2.0)
        for scenario in REDIS_SCENARIOS
        for layout in LAYOUTS
    }
    rows = redis_rows(RedisResult(measures, ("waitress",), "7.0.0", []))
    assert rows[0][5:7] == ("Redis / memory", "2 / 1 processes")
    get_row = rows[1]
    assert get_row[:2] == ("/get hit", "waitress")
    assert get_row[5:] == ("0.70", "1.50", "vs memory >= 0.6: met; 2 processes > 1: met")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_bench_s_redis_server_keeps_nothing_and_goes_away():
    store = RedisServer(shutil.which("redis-server"))
    try:
        client = redis.Redis.from_url(store.url)
        assert store.url.startswith("redis://127.0.0.1:")
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("dir")["dir"] == os.path.realpath(store.directory)
        client.close()
    finally:
        store.stop()
    assert store.process.poll() is not None
    assert not os.path.exists(store.directory)


def test_without_redis_server_the_section_says_it_was_skipped(monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "redis-server" else real_which(name)
    )
    result = measure_redis(1, 1)
    assert result is None
    print_section(result)
    assert "skipped: redis-server is not installed" in capsys.readouterr().out
