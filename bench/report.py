"""How the bench prints: figures as text, tables in Markdown."""

from __future__ import annotations

import statistics
from typing import Sequence

from .http_bench import Measure


def p99(values: Sequence[float]) -> float:
    """The 99th percentile of `values` (two at least), interpolated as statistics does."""
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def rate(measure: Measure) -> str:
    return f"{measure.requests_per_second:,.0f}/s ({measure.p50_ms:.2f}/{measure.p99_ms:.2f} ms)"


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
