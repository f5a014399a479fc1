"""The contract suite: API.md's behaviour, the same on every backend and every server.

Each test in this folder that uses the app (the `backend` fixture, through `app`,
`client` or `store`) runs once per entry of CONTRACT_SERVING.
"""

from __future__ import annotations

import pytest

# How a contract test's app serves: (backend, hot path on, through). The Flask view (hot
# path off) runs on the memory store; Redis (one server, and a 3-primary Redis Cluster)
# answers through the hot path; "waitress"
# sends every request of the test client over a socket to real waitress (in-process, so
# the test's clock and store are the server's); "granian" sends them to a real granian
# process serving an app with the test's settings, its clock kept with the test's.
CONTRACT_SERVING = [
    ("memory", True, "test-client"),
    ("memory", False, "test-client"),
    ("redis", True, "test-client"),
    ("redis-cluster", True, "test-client"),
    ("memory", True, "waitress"),
    ("memory", True, "granian"),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test here that uses the app runs on every backend, with the hot path on and
    off, and through real servers."""
    if "backend" in metafunc.fixturenames:
        serving = CONTRACT_SERVING
        names: tuple[str, ...] = ("backend", "hot_path", "through")
        if "through" not in metafunc.fixturenames:  # no `client`: its own way to the app
            serving = [entry[:2] for entry in serving if entry[2] == "test-client"]
            names = names[:2]
        metafunc.parametrize(
            names,
            serving,
            indirect=True,
            ids=[
                f"{entry[0]}-{'hot' if entry[1] else 'flask'}"
                + (f"-{entry[2]}" if entry[2:] and entry[2] != "test-client" else "")
                for entry in serving
            ],
        )


# Contract tests whose request granian refuses, as the README says (Serving): each still
# runs through granian and must fail there (strict), so the README is told when it no
# longer holds.
GRANIAN_REFUSES = {
    "tests/contract/test_memcached_verbs.py::test_every_body_kind_accepts_values_up_to_max_value_bytes"
    "[memory-hot-granian-query]": "granian (hyper) refuses a URL over 64 KiB with 414: "
    "a 1 MiB value goes in a POST body (tests/serving/test_granian.py checks the 414)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = GRANIAN_REFUSES.get(item.nodeid)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, raises=AssertionError, strict=True))
