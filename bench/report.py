"""How the bench prints: figures as text, tables in Markdown."""

from __future__ import annotations

from .http_bench import Measure


def rate(measure: Measure) -> str:
    return f"{measure.requests_per_second:,.0f}/s ({measure.p50_ms:.2f}/{measure.p99_ms:.2f} ms)"


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
