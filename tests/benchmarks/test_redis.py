"""The bench's Redis section: its own throwaway redis-server, the figures the issue asks
for, the bare WSGI references on a dict and on Redis, and targets judged from the same
run's measures (no timing is asserted here)."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
import redis
from werkzeug.test import Client

from bench import serve
from bench.http_bench import LocalServer, Measure, scenarios
from bench.redis_bench import (
    BARE_DICT,
    BARE_PIPELINED,
    BARE_REDIS,
    LAYOUTS,
    MEMORY,
    ONE,
    REDIS_SCENARIOS,
    TWO,
    WORKERS,
    Process,
    RedisResult,
    RedisServer,
    ceiling_rows,
    measure_redis,
    pipelined_rows,
    plan,
    print_section,
    redis_rows,
    total,
)
from bench.references import AutoPipeline, bare_redis_app, bare_redis_pipelined_app
from bench.targets import REDIS_GOALS, redis_verdicts
from memflask.config import default_threads

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server"
)


@pytest.fixture(scope="module")
def bench_redis():
    """One bench redis-server for the tests that talk to Redis."""
    store = RedisServer(shutil.which("redis-server"))
    yield store
    store.stop()


def test_the_redis_section_plans_the_issue_s_figures():
    assert set(REDIS_GOALS) == set(REDIS_SCENARIOS) == {"/get hit", "/set"}
    assert set(REDIS_SCENARIOS) <= {scenario.name for scenario in scenarios()}


def test_every_layout_runs_on_every_server_and_two_workers_only_on_granian():
    references = (BARE_DICT, BARE_REDIS, BARE_PIPELINED)
    assert plan(("waitress", "granian")) == [
        *(("waitress", layout) for layout in (MEMORY, ONE, TWO, *references)),
        *(("granian", layout) for layout in (MEMORY, ONE, TWO, WORKERS, *references)),
    ]
    assert plan(("waitress",)) == [("waitress", layout) for layout in LAYOUTS if layout != WORKERS]


def test_each_layout_runs_the_apps_it_compares():
    on_redis = Process("memflask", "redis")
    assert LAYOUTS[MEMORY] == (Process("memflask", "memory"),)
    assert LAYOUTS[ONE] == (on_redis,)
    # Two processes: the one-process figure's, and a second started beside it.
    assert LAYOUTS[TWO] == (on_redis, Process("memflask", "redis", copy=2))
    assert LAYOUTS[WORKERS] == (Process("memflask", "redis", workers=2),)
    # The references: the bare callable of the HTTP section, and its Redis twins.
    assert LAYOUTS[BARE_DICT] == (Process("bare-wsgi", "memory"),)
    assert LAYOUTS[BARE_REDIS] == (Process("bare-wsgi-redis", "redis"),)
    assert LAYOUTS[BARE_PIPELINED] == (Process("bare-wsgi-redis-pipelined", "redis"),)
    for processes in LAYOUTS.values():
        assert all(process.app in {**serve.APPS, **serve.REDIS_APPS} for process in processes)


def test_two_granian_workers_differ_from_one_only_in_the_count():
    one = serve.command("granian", "memflask", 8123)
    two = serve.command("granian", "memflask", 8123, workers=2)
    at = one.index("--workers") + 1
    assert (one[at], two[at]) == ("1", "2")
    assert one[:at] + one[at + 1 :] == two[:at] + two[at + 1 :]
    with pytest.raises(ValueError):
        serve.command("waitress", "memflask", 8123, workers=2)


@pytest.mark.parametrize(
    "app, factory",
    [
        ("bare-wsgi-redis", "bare_redis_app"),
        ("bare-wsgi-redis-pipelined", "bare_redis_pipelined_app"),
    ],
)
def test_the_redis_references_are_served_as_every_other_app(app, factory):
    command = serve.command("granian", app, 8123)
    assert command[-1] == f"bench.references:{factory}"
    # The other references' settings, on as many threads as memflask runs its app at once
    # on Redis (THREADS, since it waits).
    on_dict = serve.command("granian", "bare-wsgi", 8123)
    at = command.index("--blocking-threads")
    assert command[:at] + command[at + 2 : -1] == on_dict[:at] + on_dict[at + 2 : -1]
    assert int(command[at + 1]) == default_threads("redis://127.0.0.1:1/0")


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


def measured(figures: dict[str, float], servers=("waitress",)) -> RedisResult:
    """A result whose every figure on every server is `figures[layout]` req/s."""
    measures = {
        (scenario, server, layout): Measure(figures[layout], 1.0, 2.0)
        for scenario in REDIS_SCENARIOS
        for server, layout in plan(servers)
    }
    return RedisResult(measures, servers, "7.0.0", [])


FIGURES = {
    MEMORY: 1000.0,
    ONE: 700.0,
    TWO: 1050.0,
    WORKERS: 840.0,
    BARE_DICT: 1250.0,
    BARE_REDIS: 800.0,
    BARE_PIPELINED: 900.0,
}


def test_the_table_carries_the_ratios_from_the_same_run():
    rows = redis_rows(measured(FIGURES, ("waitress", "granian")))
    assert rows[0][6:9] == ("Redis / memory", "2 / 1 processes", "2 / 1 workers")
    assert [row[:2] for row in rows[1:]] == [
        ("/get hit", "waitress"),
        ("/get hit", "granian"),
        ("/set", "waitress"),
        ("/set", "granian"),
    ]
    on_waitress, on_granian = rows[1], rows[2]
    assert on_waitress[5] == "-"  # no second worker on waitress
    assert on_waitress[6:] == ("0.70", "1.50", "-", "vs memory >= 0.6: met; 2 processes > 1: met")
    assert on_granian[5].startswith("840/s")
    assert on_granian[6:9] == ("0.70", "1.50", "1.20")


def test_the_ceiling_table_sets_the_bare_callable_s_cost_of_redis_beside_memflask_s():
    rows = ceiling_rows(measured(FIGURES))
    assert rows[0][4:] == (
        "bare WSGI: Redis / dict",
        "memflask: Redis / memory",
        "bare WSGI, Redis / memflask, memory",
        "memflask / bare WSGI, dict",
        "memflask / bare WSGI, Redis",
    )
    get_row = rows[1]
    assert get_row[:2] == ("/get hit", "waitress")
    assert get_row[2].startswith("1,250/s") and get_row[3].startswith("800/s")
    # 800 / 1250; 700 / 1000; 800 / 1000; 1000 / 1250; 700 / 800
    assert get_row[4:] == ("0.64", "0.70", "0.80", "0.80", "0.88")


def test_the_pipelined_table_sets_the_other_client_shape_beside_one_call_each():
    rows = pipelined_rows(measured(FIGURES))
    assert rows[0][2:] == (
        "bare WSGI, Redis",
        "bare WSGI, Redis pipelined",
        "pipelined / one call each",
        "pipelined / memflask, memory",
        "target",
    )
    get_row, set_row = rows[1], rows[2]
    assert get_row[:2] == ("/get hit", "waitress") and set_row[:2] == ("/set", "waitress")
    assert get_row[2].startswith("800/s") and get_row[3].startswith("900/s")
    # 900 / 800; 900 / 1000; the target memflask's Redis / memory is judged against
    assert get_row[4:] == ("1.12", "0.90", "0.6")
    assert set_row[6] == "0.5"


@needs_redis_server
@pytest.mark.parametrize("make", [bare_redis_app, bare_redis_pipelined_app])
def test_the_redis_references_make_one_redis_call_per_request(bench_redis, monkeypatch, make):
    monkeypatch.setenv("MEMFLASK_STORE_URL", bench_redis.url)
    client = Client(make())
    direct = redis.Redis.from_url(bench_redis.url)
    try:
        assert client.get("/get?key=reference-key").status_code == 404
        written = client.get("/set?key=reference-key&value=v")
        assert written.status_code == 204
        assert "Content-Length" not in written.headers  # as memflask's and the bare callable's
        assert direct.get("reference-key") == b"v"
        response = client.get("/get?key=reference-key")
        assert (response.status_code, response.data) == (200, b"v")
        assert client.get("/stats").status_code == 200
        assert client.get("/increment?key=n&value=1").status_code == 404  # not a route of it
    finally:
        direct.delete("reference-key")
        direct.close()


@needs_redis_server
def test_pipelined_calls_from_many_threads_each_get_their_own_answer(bench_redis):
    client = redis.Redis.from_url(bench_redis.url)
    pipelined = AutoPipeline(client)
    answers: dict[int, list] = {}

    def work(thread: int) -> None:
        for number in range(200):
            pipelined.call("SET", f"pipelined:{thread}:{number}", f"{thread}-{number}")
        answers[thread] = [pipelined.call("GET", f"pipelined:{thread}:{n}") for n in range(200)]

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not any(thread.is_alive() for thread in threads)
        for thread in range(8):
            assert answers[thread] == [f"{thread}-{n}".encode() for n in range(200)]
        # An error is the caller's own; the round trip goes on for the others.
        with pytest.raises(redis.ResponseError):
            pipelined.call("INCR", "pipelined:0:0")
        assert pipelined.call("GET", "pipelined:0:1") == b"0-1"
        assert not pipelined.sending and not pipelined.waiting
    finally:
        client.delete(*(f"pipelined:{t}:{n}" for t in range(8) for n in range(200)))
        client.close()


@needs_redis_server
def test_a_failed_round_trip_reaches_its_caller_and_frees_the_turn():
    store = RedisServer(shutil.which("redis-server"))
    client = redis.Redis.from_url(store.url, socket_timeout=2)
    pipelined = AutoPipeline(client)
    assert pipelined.call("SET", "k", "v") is True
    store.stop()
    with pytest.raises(redis.ConnectionError):
        pipelined.call("GET", "k")
    assert not pipelined.sending and not pipelined.waiting
    client.close()


@needs_redis_server
def test_the_redis_reference_takes_the_bench_s_seed_on_a_real_server(bench_redis):
    process = LocalServer("bare-wsgi-redis", "waitress", {"MEMFLASK_STORE_URL": bench_redis.url})
    direct = redis.Redis.from_url(bench_redis.url)
    try:
        process.seed()
        assert process.call("/get?key=k0") == 200
        assert direct.get("k99") == b"value-99"
    finally:
        process.stop()
        direct.flushdb()
        direct.close()


@needs_redis_server
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
