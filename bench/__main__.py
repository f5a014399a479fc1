"""`python -m bench [--smoke]`: every figure beside its references, as one table.

These machines are shared and noisy: every figure is the median of several rounds, and
each is compared with its references measured in the same run, in interleaved order.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from .http_bench import CONNECTIONS, measure_http
from .store_bench import bytes_per_item, measure_mix

STORE_SIZES = (1_000, 100_000, 1_000_000)
MEMORY_ITEMS = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per figure (CI)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (median taken)")
    parser.add_argument("--seconds", type=float, help="seconds per HTTP run")
    options = parser.parse_args()
    rounds = options.rounds or (1 if options.smoke else 3)
    seconds = options.seconds or (1 if options.smoke else 5)
    operations = 20_000 if options.smoke else 300_000
    sizes = STORE_SIZES[:2] if options.smoke else STORE_SIZES
    memory_items = 100_000 if options.smoke else MEMORY_ITEMS

    started = time.monotonic()
    http = measure_http(seconds, rounds)
    mix = measure_mix(sizes, operations, rounds)
    memory = {
        kind: bytes_per_item(kind, memory_items) for kind in ("memflask", "ttlcache", "ordereddict")
    }

    print(
        f"memflask bench ({'smoke' if options.smoke else 'full'}): "
        f"Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, wrk -t1 -c{CONNECTIONS}, {seconds:g} s x {rounds} rounds "
        f"(medians), store mix {operations:,} ops x {rounds} rounds\n"
    )
    rows = [("figure", "memflask", "reference", "reference", "ratio", "target")]
    rows += http_rows(http)
    rows += store_rows(mix, sizes)
    rows += memory_rows(memory, memory_items)
    print_table(rows)
    print(f"\n{time.monotonic() - started:.0f} s in all")


def rate(measure) -> str:
    return f"{measure.requests_per_second:,.0f}/s ({measure.p50_ms:.2f}/{measure.p99_ms:.2f} ms)"


def verdict(ratio: float, target: float) -> str:
    return f">= {target:g}: {'met' if ratio >= target else 'MISSED'}"


def http_rows(http) -> list[tuple[str, ...]]:
    rows = []
    for name in ("/get hit", "/get miss", "/set", "/increment", "/stats"):
        ours, flask, bare = (
            http[(name, app)] for app in ("memflask", "flask-minimal", "bare-wsgi")
        )
        vs_flask = ours.requests_per_second / flask.requests_per_second
        vs_bare = ours.requests_per_second / bare.requests_per_second
        target = ""
        if name in ("/get hit", "/set"):
            target = f"vs Flask {verdict(vs_flask, 0.9)}"
        if name == "/get hit":
            target += f"; vs WSGI (stretch) {verdict(vs_bare, 0.75)}"
        rows.append(
            (
                f"HTTP {name} req/s (p50/p99)",
                rate(ours),
                f"minimal Flask {rate(flask)}",
                f"bare WSGI {rate(bare)}",
                f"{vs_flask:.2f} / {vs_bare:.2f}",
                target,
            )
        )
    single = http[("/get hit", "memflask")].requests_per_second
    for name in ("/mget x10", "/mget x100", "/batch x10", "/batch x100"):
        ours = http[(name, "memflask")]
        ratio = ours.requests_per_second / single
        target = verdict(ratio, 20) if name.endswith("x100") else ""
        rows.append(
            (
                f"HTTP {name} ops/s",
                f"{ours.requests_per_second:,.0f}/s",
                f"memflask /get {single:,.0f}/s",
                "",
                f"{ratio:.1f}x",
                target,
            )
        )
    return rows


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


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")


if __name__ == "__main__":
    main()
