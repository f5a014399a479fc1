"""Light imports: the client and the cache backend load without the server's packages, and
every memflask module imports on its own in a fresh interpreter (so a cycle shows)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import memflask

# Run from the project's root, so that the subprocesses import this checkout's memflask.
ROOT = Path(memflask.__file__).resolve().parent.parent

SERVER_PACKAGES = {"flask", "werkzeug", "waitress", "prometheus_client", "redis"}


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (this one's executable)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def top_level_names_imported_by(module: str) -> set[str]:
    """The top-level packages in sys.modules after a fresh interpreter imports `module`."""
    result = run_python(
        f"import sys, {module}\n"
        "print('\\n'.join(sorted({name.partition('.')[0] for name in sys.modules})))"
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # The client needs urllib3 alone; the cache backend adds cachelib.
        ("memflask.client", SERVER_PACKAGES | {"cachelib"}),
        ("memflask.caching", SERVER_PACKAGES),
        ("memflask.aio", SERVER_PACKAGES | {"cachelib", "django"}),
        ("memflask.django", SERVER_PACKAGES | {"cachelib", "httpx"}),
    ],
)
def test_light_module_imports_none_of_the_server_packages(module, forbidden):
    assert top_level_names_imported_by(module) & forbidden == set()


def test_building_the_app_imports_no_server():
    """create_app serves under any server: waitress and granian come with their own entry
    points (memflask.serving.waitress, memflask.serving.granian), never with the app."""
    result = run_python(
        "import sys\n"
        "from memflask import create_app\n"
        "create_app({'APP_ENV': 'production'})\n"
        "print('\\n'.join(sorted({name.partition('.')[0] for name in sys.modules})))"
    )
    assert result.returncode == 0, result.stderr
    assert {"waitress", "granian"} & set(result.stdout.split()) == set()


def test_the_flask_caching_backend_is_built_on_first_use():
    # Importing memflask.caching stays light; looking MemflaskCache up brings Flask-Caching.
    result = run_python(
        "import sys, memflask.caching\n"
        "assert 'flask_caching' not in sys.modules\n"
        "from memflask.caching import MemflaskCache\n"
        "from flask_caching.backends.base import BaseCache\n"
        "assert issubclass(MemflaskCache, BaseCache)\n"
        "assert memflask.caching.MemflaskCache is MemflaskCache\n"
    )
    assert result.returncode == 0, result.stderr


def raise_import_error(package: str) -> None:
    # walk_packages skips a package it cannot import unless told otherwise: fail instead.
    raise ImportError(f"cannot import {package} to list its modules")


def test_every_module_imports_on_its_own():
    # Listed now, not written down: modules are added and moved under memflask/.
    modules = [
        found.name
        for found in pkgutil.walk_packages(
            memflask.__path__, "memflask.", onerror=raise_import_error
        )
    ]
    assert "memflask.client" in modules
    failures = {}
    for module in modules:
        # A fresh interpreter each: in one process, earlier imports would hide a cycle.
        result = run_python(f"import {module}")
        if result.returncode != 0:
            failures[module] = result.stderr.strip().splitlines()[-1]
    assert failures == {}
