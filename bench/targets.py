"""The issue's HTTP targets, as data: reported beside the figures, never asserted.

A target compares memflask on one server with a reference measured in the same run:
throughput as a ratio that must reach `bound`, or p99 latency as a ratio that must stay
at or under it. Targets against "the original" apply to every `--reference` server (give
the Go original); without one they print as not measured.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from .http_bench import Measure, Target
from .serve import PLAIN_WAITRESS

EVERY_SERVER = "every server"
ORIGINAL = "original"  # in `versus`: each server given with --reference
SHORT_NAMES = {
    PLAIN_WAITRESS: "plain waitress.serve",
    "flask-minimal": "Flask",
    "bare-wsgi": "WSGI",
}


class Goal(NamedTuple):
    scenario: str  # memflask's figure, as in http_bench.scenarios()
    server: str  # the server memflask runs on: "waitress", "granian" or EVERY_SERVER
    versus: str  # a reference app on the same server, or ORIGINAL
    bound: float
    p99: bool = False  # p99 latency at most `bound` x the reference's (else req/s at least)
    # The reference's figure compared, when not the same: /mget's ops/s against single /get.
    their_scenario: Optional[str] = None


GOALS = (
    # What memflask's own server costs: its production command against the same app under
    # plain waitress.serve.
    Goal("/get hit", "waitress", PLAIN_WAITRESS, 0.95),
    Goal("/set", "waitress", PLAIN_WAITRESS, 0.95),
    Goal("/get hit", "waitress", "bare-wsgi", 0.85),
    Goal("/set", "waitress", "bare-wsgi", 0.85),
    Goal("/set", "waitress", "flask-minimal", 1.4),
    Goal("/get hit", "waitress", "bare-wsgi", 2.0, p99=True),
    Goal("/get hit", "granian", ORIGINAL, 0.5),
    Goal("/get hit", "granian", "bare-wsgi", 0.9),
    Goal("/get hit", "granian", "bare-wsgi", 1.5, p99=True),
    Goal("/set", "granian", "bare-wsgi", 0.55, their_scenario="/get hit"),
    Goal("/set", "granian", ORIGINAL, 0.3),
    Goal("/mget x100", EVERY_SERVER, ORIGINAL, 2.0, their_scenario="/get hit"),
    Goal("/batch x100", EVERY_SERVER, ORIGINAL, 2.0, their_scenario="/get hit"),
)


def verdicts(
    scenario: str,
    server: str,
    measures: dict[tuple[str, Target], Measure],
    references: tuple[str, ...],
) -> list[str]:
    """One phrase per goal for memflask's `scenario` on `server`: "vs WSGI >= 0.85: met"."""
    ours = measures.get((scenario, Target("memflask", server)))
    if ours is None:
        return []
    phrases = []
    for goal in GOALS:
        if goal.scenario != scenario or goal.server not in (server, EVERY_SERVER):
            continue
        their_scenario = goal.their_scenario or scenario
        if goal.versus == ORIGINAL:
            if not references:
                phrases.append(f"{describe(goal, ORIGINAL)}: no --reference")
            for name in references:
                theirs = measures.get((their_scenario, Target(name, "reference")))
                phrases.append(judge(goal, name, ours, theirs))
        else:
            theirs = measures.get((their_scenario, Target(goal.versus, server)))
            phrases.append(judge(goal, SHORT_NAMES[goal.versus], ours, theirs))
    return phrases


def describe(goal: Goal, versus: str) -> str:
    suffix = f" {goal.their_scenario}" if goal.their_scenario else ""
    if goal.p99:
        return f"p99 <= {goal.bound:g}x {versus}{suffix}'s"
    return f"vs {versus}{suffix} >= {goal.bound:g}"


def judge(goal: Goal, versus: str, ours: Measure, theirs: Optional[Measure]) -> str:
    if theirs is None:
        return f"{describe(goal, versus)}: not measured there"
    if goal.p99:
        ratio = ours.p99_ms / theirs.p99_ms
        met = ratio <= goal.bound
        return f"{describe(goal, versus)} ({ratio:.2f}x): {'met' if met else 'MISSED'}"
    ratio = ours.requests_per_second / theirs.requests_per_second
    met = ratio >= goal.bound
    return f"{describe(goal, versus)}: {'met' if met else 'MISSED'}"


# memflask on one Redis against memflask on the memory store, on the same server with
# the same settings: req/s at least this share (bench/redis_bench.py).
REDIS_GOALS = {"/get hit": 0.6, "/set": 0.5}
# Two memflask processes on one Redis, wrk against each at once: their summed req/s
# more than one process's.
TWO_PROCESSES_BOUND = 1.0


def redis_verdicts(scenario: str, versus_memory: float, two_over_one: float) -> list[str]:
    """The Redis section's phrases for one row: "vs memory >= 0.6: met", "2 > 1: met"."""
    phrases = []
    bound = REDIS_GOALS.get(scenario)
    if bound is not None:
        phrases.append(f"vs memory >= {bound:g}: {'met' if versus_memory >= bound else 'MISSED'}")
    met = two_over_one > TWO_PROCESSES_BOUND
    phrases.append(f"2 processes > 1: {'met' if met else 'MISSED'}")
    return phrases
