"""`python -m bench [--smoke] [--reference NAME=URL]`: every figure beside its references.

These machines are shared and noisy: every figure is the median of several rounds, and
each is compared with its references measured in the same run, in interleaved order.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from .hit_ratio_bench import measure_hit_ratios
from .hit_ratio_bench import print_section as print_hit_ratios
from .http_bench import (
    CONNECTIONS,
    LATENCY_APPS,
    LOCAL_APPS,
    WRK_THREADS,
    Result,
    Target,
    measure_http,
    parse_reference,
    scenarios,
)
from .redis_bench import measure_redis, print_section
from .report import print_table, rate
from .serve import PLAIN_WAITRESS
from .shard_bench import measure_shards
from .shard_bench import print_section as print_shards
from .stampede_bench import measure_stampede
from .stampede_bench import print_section as print_stampede
from .store_bench import bytes_per_item, measure_mix
from .targets import verdicts

STORE_SIZES = (1_000, 100_000, 1_000_000)
MEMORY_ITEMS = 1_000_000
APP_TITLES = {
    "memflask": "memflask",
    PLAIN_WAITRESS: "memflask, plain waitress.serve",
    "flask-minimal": "minimal Flask",
    "bare-wsgi": "bare WSGI",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a second per figure (CI)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (median taken)")
    parser.add_argument("--seconds", type=int, help="seconds per HTTP run (whole: wrk's unit)")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME=URL",
        type=reference_option,
        help="a running server with the original's API, measured as one more reference "
        "(e.g. go=http://127.0.0.1:8001); may be given several times",
    )
    options = parser.parse_args()
    rounds = options.rounds or (1 if options.smoke else 3)
    seconds = options.seconds or (1 if options.smoke else 3)
    operations = 20_000 if options.smoke else 300_000
    sizes = STORE_SIZES[:2] if options.smoke else STORE_SIZES
    memory_items = 100_000 if options.smoke else MEMORY_ITEMS

    started = time.monotonic()
    http = measure_http(seconds, rounds, dict(options.reference))
    on_redis = measure_redis(seconds, rounds)
    shards = measure_shards(seconds, rounds)
    stampede = measure_stampede(2.0 if options.smoke else 10.0, rounds)
    hit_objects = 10_000 if options.smoke else 1_000_000
    hit_ratios = measure_hit_ratios(hit_objects)
    mix = measure_mix(sizes, operations, rounds)
    memory = {
        kind: bytes_per_item(kind, memory_items) for kind in ("memflask", "ttlcache", "ordereddict")
    }

    print(
        f"memflask bench ({'smoke' if options.smoke else 'full'}): "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"wrk -t{WRK_THREADS} -c{CONNECTIONS}, {seconds:g} s x {rounds} rounds (medians), "
        f"store mix {operations:,} ops x {rounds} rounds\n"
    )
    print("HTTP, one operation per request: req/s (p50/p99 latency)\n")
    print_table(single_operation_rows(http))
    print("\nHTTP, batching: ops/s\n")
    print_table(batching_rows(http))
    print("\nHTTP, latency of /get hit: p50 / p99 / p99.9\n")
    print_table(latency_rows(http))
    for note in dict.fromkeys(http.notes):  # once each, though every round may add it
        print(f"note: {note}")
    print()
    print_section(on_redis)
    print()
    print_shards(shards)
    print()
    print_stampede(stampede)
    print()
    print_hit_ratios(hit_ratios, hit_objects)
    print("\nStore alone\n")
    header = ("figure", "memflask", "reference", "reference", "ratio", "target")
    print_table([header, *store_rows(mix, sizes), *memory_rows(memory, memory_items)])
    print(f"\n{time.monotonic() - started:.0f} s in all")


def reference_option(text: str) -> tuple[str, str]:
    try:
        return parse_reference(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def verdict(ratio: float, target: float) -> str:
    return f">= {target:g}: {'met' if ratio >= target else 'MISSED'}"


def single_operation_rows(http: Result) -> list[tuple[str, ...]]:
    """One row per scenario and server: memflask and the reference apps on that server,
    the reference servers (the same figures on every server's row), memflask's ratios."""
    header = ["figure", "server", *(APP_TITLES[app] for app in LOCAL_APPS), *http.references]
    header += [f"vs {APP_TITLES[app]}" for app in LOCAL_APPS[1:]]
    header += [f"vs {name}" for name in http.references] + ["target"]
    rows = [tuple(header)]
    for scenario in scenarios():
        if scenario.memflask_only or scenario.latency_only:
            continue
        for server in http.servers:
            # memflask under plain waitress.serve: on waitress only ("-" elsewhere).
            local = [http.measures.get((scenario.name, Target(app, server))) for app in LOCAL_APPS]
            remote = [
                http.measures.get((scenario.name, Target(name, "reference")))
                for name in http.references
            ]
            ours = local[0].requests_per_second
            rows.append(
                (
                    scenario.name,
                    server,
                    *(rate(measure) if measure else "-" for measure in local),
                    *(rate(measure) if measure else "not served" for measure in remote),
                    *(f"{ours / m.requests_per_second:.2f}" if m else "-" for m in local[1:]),
                    *(f"{ours / m.requests_per_second:.2f}" if m else "" for m in remote),
                    "; ".join(verdicts(scenario.name, server, http.measures, http.references)),
                )
            )
    return rows


def batching_rows(http: Result) -> list[tuple[str, ...]]:
    """memflask's /mget and /batch ops/s against single /get req/s: its own on the same
    server, and each reference server's (which has no batching of its own)."""
    header = ["figure", "server", "memflask ops/s", "memflask /get"]
    header += [f"{name} /get" for name in http.references] + ["vs memflask /get"]
    header += [f"vs {name} /get" for name in http.references] + ["target"]
    rows = [tuple(header)]
    for scenario in scenarios():
        if not scenario.memflask_only:
            continue
        for server in http.servers:
            ours = http.measures[(scenario.name, Target("memflask", server))].requests_per_second
            singles = [http.measures[("/get hit", Target("memflask", server))]]
            singles += [
                http.measures.get(("/get hit", Target(name, "reference")))
                for name in http.references
            ]
            rows.append(
                (
                    scenario.name,
                    server,
                    f"{ours:,.0f}/s",
                    *(f"{m.requests_per_second:,.0f}/s" if m else "not served" for m in singles),
                    *(f"{ours / m.requests_per_second:.1f}x" if m else "" for m in singles),
                    "; ".join(verdicts(scenario.name, server, http.measures, http.references)),
                )
            )
    return rows


def latency_rows(http: Result) -> list[tuple[str, ...]]:
    """/get hit's latency percentiles at CONNECTIONS and at many connections: memflask and
    the bare WSGI callable on each server, and each reference server."""
    loads = [s for s in scenarios() if s.name == "/get hit" or s.latency_only]
    header = ["app", "server"]
    header += [f"{scenario.connections} connections: req/s, p50/p99/p99.9" for scenario in loads]
    header += [f"p99 vs bare WSGI at {scenario.connections}" for scenario in loads]
    rows = [tuple(header)]
    targets = [Target(app, server) for server in http.servers for app in LATENCY_APPS]
    targets += [Target(name, "reference") for name in http.references]
    for target in targets:
        measured = [http.measures.get((scenario.name, target)) for scenario in loads]
        bare = [
            http.measures.get((scenario.name, Target("bare-wsgi", target.server)))
            for scenario in loads
        ]
        rows.append(
            (
                APP_TITLES.get(target.app, target.app),
                target.server,
                *(percentiles(measure) for measure in measured),
                *(
                    f"{measure.p99_ms / theirs.p99_ms:.2f}x" if measure and theirs else ""
                    for measure, theirs in zip(measured, bare)
                ),
            )
        )
    return rows


def percentiles(measure) -> str:
    if measure is None:
        return "not served"
    return (
        f"{measure.requests_per_second:,.0f}/s, "
        f"{measure.p50_ms:.2f}/{measure.p99_ms:.2f}/{measure.p999_ms:.2f} ms"
    )


def store_rows(mix, sizes) -> list[tuple[str, ...]]:
    rows = []
    for size in sizes:
        ours, ttl, lru = (mix[(kind, size)] for kind in ("memflask", "ttlcache", "ordereddict"))
        rows.append(
            (
                f"store mix at {size:,} keys ops/s",
                f"{ours:,.0f}/s",
                f"TTLCache {ttl:,.0f}/s",
                f"OrderedDict {lru:,.0f}/s",
                f"{ours / ttl:.2f} / {ours / lru:.2f}",
                f"vs TTLCache {verdict(ours / ttl, 2)}; vs OrderedDict {verdict(ours / lru, 0.6)}",
            )
        )
    small, large = sizes[0], sizes[-1]
    ours = mix[("memflask", large)] / mix[("memflask", small)]
    lru = mix[("ordereddict", large)] / mix[("ordereddict", small)]
    rows.append(
        (
            f"store flatness {large:,} / {small:,} keys",
            f"{ours:.2f}",
            "",
            f"OrderedDict {lru:.2f}",
            f"{ours / lru:.2f}",
            "as flat as OrderedDict (ratio >= 0.9)"
            + (": met" if ours / lru >= 0.9 else ": MISSED"),
        )
    )
    return rows


def memory_rows(memory, items) -> list[tuple[str, ...]]:
    ours, ttl, lru = memory["memflask"], memory["ttlcache"], memory["ordereddict"]
    met = "met" if ours <= ttl else "MISSED"
    return [
        (
            f"memory per item at {items:,} items",
            f"{ours:.0f} B",
            f"TTLCache {ttl:.0f} B",
            f"OrderedDict {lru:.0f} B",
            f"{ours / ttl:.2f}",
            f"<= TTLCache: {met}",
        )
    ]


if __name__ == "__main__":
    main()
