"""The stampede bench section (bench/stampede_bench.py) against a real server: with a
lease, a hot key expiring under 16 readers is computed once per expiry at most."""

from __future__ import annotations

from bench.stampede_bench import WAYS, measure_stampede, print_section


def test_with_a_lease_a_hot_key_is_computed_once_per_expiry_at_most(capsys):
    result = measure_stampede(seconds=2.5, rounds=1)
    for way in WAYS[1:]:  # with a lease, with and without stale
        # A count, not a timing: computations at least TTL + the computation apart.
        assert 1 <= result.computations[way][0] <= result.expiries[way][0], (way, result)
    print_section(result)
    assert "get_or_set, lease" in capsys.readouterr().out
