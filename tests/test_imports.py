"""Light imports: the client and the cache backend load without the server's packages, and
every memflask module imports on its own in a fresh interpreter (so a cycle shows)."""

from __future__ import annotations

import ast
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


def memflask_imports(path: Path) -> set[str]:
    """The memflask modules a source file imports (module level or not), relative ones
    resolved: `from ..store import base` in memflask/serving/x.py gives memflask.store and
    memflask.store.base."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "memflask" or name.startswith("memflask.")}


def module_files() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / "memflask").rglob("*.py")
        if "__pycache__" not in path.parts
    }


# The layers, lowest first: a module imports only from its own layer or lower ones.
LAYERS = (
    ("memflask.limits", "memflask.allocator", "memflask.log_filters"),
    ("memflask.core",),
    ("memflask.store",),
    ("memflask.config",),  # settings, validated against the stores' schemes
    ("memflask.commands", "memflask.lifecycle"),
    ("memflask.web",),
    # create_app builds an app any server can serve; the servers build it in their workers.
    ("memflask.app", "memflask.create_app"),
    ("memflask.serving",),
    ("memflask.cli", "memflask.__main__"),
)
# The clients' side: what they share, and the clients and framework backends over it.
CLIENT_SIDE = (
    "memflask.protocol",
    "memflask.calls",
    "memflask.answers",
    "memflask.deadlines",
    "memflask.limits",
    "memflask.codec",
    "memflask.placement",
    "memflask.sharding",
    "memflask.stampede",
)
CLIENTS = ("memflask.client", "memflask.aio", "memflask.caching", "memflask.django")
# The package itself and its version, which any layer may read.
ROOT_NAMES = {"memflask", "memflask.__version__"}


def layer_of(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if module.startswith(layer):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS or CLIENTS")


def test_the_layers_import_only_downwards():
    """core <- store <- config <- commands <- web <- app <- serving <- cli, limits below all;
    building the app imports no server (only the entry points do); the clients import only
    what they share."""
    modules = module_files()
    imports = {name: memflask_imports(path) for name, path in modules.items()}
    assert imports["memflask.limits"] == set()
    upward = {}
    for name, imported in imports.items():
        if name == "memflask" or name.startswith((*CLIENTS, *CLIENT_SIDE)):
            continue
        above = {i for i in imported - ROOT_NAMES if layer_of(i) > layer_of(name)}
        if above:
            upward[name] = above
    assert upward == {}
    for name, imported in imports.items():
        if not name.startswith("memflask.serving"):
            entry_point = name in ("memflask.cli", "memflask.__main__")
            servers = {i for i in imported if i.startswith("memflask.serving")}
            assert entry_point or not servers, (name, servers)
    assert "memflask.serving.waitress" in imports["memflask.__main__"]
    # The clients: their transport over the shared description of the verbs.
    for client in ("memflask.client", "memflask.aio"):
        assert all(name.startswith(CLIENT_SIDE) for name in imports[client]), imports[client]
    for backend in ("memflask.caching", "memflask.django"):
        allowed = (*CLIENT_SIDE, "memflask.client")
        assert all(name.startswith(allowed) for name in imports[backend] - ROOT_NAMES), backend
    for shared in ("memflask.protocol", "memflask.answers"):
        assert all(name.startswith(CLIENT_SIDE) for name in imports[shared]), shared


def third_party_imports(path: Path) -> set[str]:
    """The top-level names of what a source file imports that is not memflask."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").partition(".")[0])
    return found - {"memflask"}


@pytest.mark.parametrize("module", ["pipeline", "hotpath", "state", "request_log"])
def test_the_request_path_imports_no_flask(module):
    """As Flask's sansio/ folder: what the hot path and the Flask view share runs on a
    WSGI environ, without Flask (memflask/web/__init__.py says so)."""
    path = ROOT / "memflask" / "web" / f"{module}.py"
    assert "flask" not in third_party_imports(path)
