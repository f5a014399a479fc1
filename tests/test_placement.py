"""memflask/placement.py: rendezvous hashing, as the README specifies it (test vectors)."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from memflask import placement
from memflask.placement import server_for, weight

SERVERS = ["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000"]
# (key, its weight on each of SERVERS in hex, the server that holds it): README, Placement.
VECTORS = [
    ("a", ["f7c2e7df73e2758d", "f67e0ffffc4f2166", "0c7a87d9c7ca6a53"], SERVERS[0]),
    ("user:42", ["e352079449ce89cd", "e50c3a9f2a5a366f", "db5adf841e4a02f9"], SERVERS[1]),
    ("caf\u00e9", ["62bf59ba7a7da514", "1fb735be3397d232", "0b0a43d32c5351f9"], SERVERS[0]),
    ("session:abc123", ["d5e16bee6f16fd23", "a64cc95fd1e9a4a8", "2ee62f35bf3b9ade"], SERVERS[0]),
    ("k9", ["087fdad277674f82", "27feb481c9b022f7", "7ed3ff1219125099"], SERVERS[2]),
]
KEYS = [f"key:{number}" for number in range(3000)]


@pytest.mark.parametrize(("key", "weights", "holder"), VECTORS, ids=[v[0] for v in VECTORS])
def test_the_test_vectors(key, weights, holder):
    assert [f"{weight(server, key):016x}" for server in SERVERS] == weights
    assert server_for(key, SERVERS) == holder


def test_a_weight_is_blake2b_of_the_server_a_newline_and_the_key():
    digest = hashlib.blake2b(b"http://10.0.0.1:8000\nuser:42", digest_size=8).digest()
    assert weight("http://10.0.0.1:8000", "user:42") == int.from_bytes(digest, "big")


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_the_readme_lists_the_test_vectors(vector):
    from tests.harness.servers import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    key, weights, holder = vector
    assert f"| `{key}` | {' | '.join(f'`{w}`' for w in weights)} | `{holder}` |" in readme


def test_the_keys_spread_evenly():
    counts = Counter(server_for(key, SERVERS) for key in KEYS)
    assert min(counts.values()) >= 0.3 * len(KEYS)


def test_a_fourth_server_takes_about_a_quarter_of_the_keys_from_the_others_only():
    four = [*SERVERS, "http://10.0.0.4:8000"]
    moved = [key for key in KEYS if server_for(key, SERVERS) != server_for(key, four)]
    assert 0.2 * len(KEYS) <= len(moved) <= 0.3 * len(KEYS)
    assert {server_for(key, four) for key in moved} == {four[3]}


def test_removing_a_server_moves_its_keys_only():
    two = SERVERS[:2]
    for key in KEYS:
        if server_for(key, SERVERS) in two:
            assert server_for(key, two) == server_for(key, SERVERS)


def test_the_order_of_the_servers_does_not_matter():
    reordered = list(reversed(SERVERS))
    assert all(server_for(key, SERVERS) == server_for(key, reordered) for key in KEYS[:300])


def test_a_tie_goes_to_the_url_that_sorts_first(monkeypatch):
    monkeypatch.setattr(placement, "weight", lambda server, key: 7)
    assert server_for("k", ["http://b:1", "http://a:1", "http://c:1"]) == "http://a:1"


def test_no_server_is_an_error():
    with pytest.raises(ValueError):
        server_for("k", [])
