"""cachelib's and Flask-Caching's own generic backend tests, run on a real memflask server.

Their test files are not copied into this repository: each is taken at test time from the
project's source distribution on the package registry, at the version installed here
(pinned per Python in requirements-dev.txt), unpacked into a temporary folder and run
there by pytest in a subprocess, with the project's own pytest settings, beside a small
adapter this module writes. The adapter plugs memflask in the way their own tests plug a
backend: cachelib's tests/test_redis_cache.py (a `cache_factory` fixture on the generic
test classes of tests/common.py, clear.py, has.py, ...) and Flask-Caching's
tests/test_backend_cache.py (a `make_cache` fixture on GenericCacheTests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from importlib.metadata import version
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness.servers import ROOT, free_port, serving

# Downloaded source distributions, kept between sessions (one file per version).
DOWNLOADS = Path(tempfile.gettempdir()) / "memflask-upstream-sdists"

# Upstream tests that cannot apply to memflask, by node id (tests/<adapter>::...), each
# with why: passed to the run as --deselect. None today: every generic test applies.
DESELECTED: dict[str, str] = {}

# cachelib's generic test classes: module (tests/<module>.py) -> class. SerializerTests
# is not in cachelib 0.14 (Python 3.9 and 3.10); the others are in every version pinned.
CACHELIB_SUITES = {
    "common": "CommonTests",
    "clear": "ClearTests",
    "has": "HasTests",
    "delete_many_with_prefix": "DeleteManyWithPrefixTests",
    "serializer": "SerializerTests",
}

CACHELIB_ADAPTER = '''\
"""memflask plugged into cachelib's generic tests as tests/test_redis_cache.py plugs Redis."""

import pytest
{imports}
from cachelib.serializers import BaseRedisSerializer

from memflask.caching import CachelibMemflaskCache, MemflaskCache

URL = {url!r}


class SillySerializer(BaseRedisSerializer):
    """A pointless serializer only for testing (as test_redis_cache.py's)."""

    def dumps(self, value):
        return repr(value).encode()

    def loads(self, bvalue):
        if bvalue is None:
            return None
        return eval(bvalue.decode())


class CustomCache(CachelibMemflaskCache):
    """A cache with a non-default serializer."""

    serializer = SillySerializer()


# cachelib 0.17's conftest has this fixture; 0.14's has none, so the adapter brings it.
@pytest.fixture(params=[None, "test-key-prefix:"], ids=["no_key_prefix", "with_key_prefix"])
def key_prefix(request):
    return request.param


@pytest.fixture(
    autouse=True,
    params=[CachelibMemflaskCache, MemflaskCache, CustomCache],
    ids=["cachelib", "flask_caching", "silly_serializer"],
)
def cache_factory(request, key_prefix):
    def _factory(self, *args, **kwargs):
        kwargs.setdefault("key_prefix", key_prefix)
        cache = request.param(URL, *args, **kwargs)
        cache.client.flush_all()  # as the Redis factory's flushdb()
        return cache

    request.cls.cache_factory = _factory


class TestMemflaskCache({classes}):
    pass
'''

FLASK_CACHING_ADAPTER = '''\
"""memflask plugged into Flask-Caching's GenericCacheTests as its Redis backend is."""

import pytest
from test_backend_cache import GenericCacheTests

from memflask.caching import MemflaskCache
from memflask.client import Client

URL = {url!r}


class TestMemflaskCache(GenericCacheTests):
    _can_use_fast_sleep = False  # the server keeps real time

    @pytest.fixture(params=[None, "werkzeug-test-case:"], ids=["no_prefix", "prefix"])
    def make_cache(self, request):
        Client(URL).flush_all()
        cache = MemflaskCache(URL, key_prefix=request.param)
        yield lambda: cache
        cache.clear()
'''


def source_distribution(project: str) -> Path:
    """The sdist of the installed `project`, downloaded once into DOWNLOADS."""
    wanted = version(project)
    folder = DOWNLOADS / f"{project}-{wanted}"
    found = sorted(folder.glob("*.tar.gz"))
    if not found:
        DOWNLOADS.mkdir(parents=True, exist_ok=True)
        # Download beside the final folder, then rename it in: a parallel session (tox)
        # never sees half a download.
        partial = tempfile.mkdtemp(dir=DOWNLOADS)
        try:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
            command += [":all:", f"{project}=={wanted}", "--dest", partial, "--quiet"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"pip download {project}: {result.stderr}"
            with contextlib.suppress(OSError):  # another session put it there first
                os.rename(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        found = sorted(folder.glob("*.tar.gz"))
    assert len(found) == 1, found
    return found[0]


def unpack(archive: Path, into: Path) -> Path:
    """Unpack the sdist into `into`; answer its top folder."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.12, and 3.9.17+ security releases
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # the registry's sdist of a pinned version
    (top,) = into.iterdir()
    return top


@pytest.fixture(scope="session", params=["one-server", "three-servers"])
def memflask_url(request) -> Iterator[str]:
    """`python -m memflask` on free loopback ports (the memory store), for the session:
    one server, or three whose keys the backend spreads (a comma-separated URL)."""
    with contextlib.ExitStack() as stack:
        urls = []
        for _ in range(1 if request.param == "one-server" else 3):
            port = free_port()
            environment = {"PORT": str(port), "APP_ENV": "production"}
            environment["PATH"] = os.environ.get("PATH", "")
            command = [sys.executable, "-m", "memflask"]
            stack.enter_context(serving(command, port, environment))
            urls.append(f"http://127.0.0.1:{port}")
        yield ",".join(urls)


def run_upstream_tests(project_root: Path, adapter: str, tmp_path: Path) -> None:
    """Run tests/<adapter> in the unpacked project, with its pytest settings; assert
    that every test passed and none was skipped."""
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", f"tests/{adapter}", "-p", "no:cacheprovider"]
    command += ["-q", "-rfEs", "--tb=short", f"--junitxml={report}"]
    for node_id in DESELECTED:
        if node_id.startswith(f"tests/{adapter}::"):
            command += ["--deselect", node_id]
    environment = dict(os.environ)
    # memflask from this checkout (tox does not install it), before the project's own.
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        command, cwd=project_root, env=environment, capture_output=True, text=True, timeout=900
    )
    output = result.stdout[-20_000:] + result.stderr[-5_000:]
    assert result.returncode == 0, output
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None, output
    counts = {name: int(suite.get(name, "0")) for name in ("tests", "failures", "errors")}
    counts["skipped"] = int(suite.get("skipped", "0"))
    assert counts["tests"] > 0 and counts["skipped"] == 0, (counts, output)


def test_cachelib_generic_tests_pass_on_memflask(memflask_url, tmp_path):
    project_root = unpack(source_distribution("cachelib"), tmp_path / "cachelib")
    tests = project_root / "tests"
    present = {
        module: name
        for module, name in CACHELIB_SUITES.items()
        if (tests / f"{module}.py").is_file()
    }
    assert set(CACHELIB_SUITES) - set(present) <= {"serializer"}, sorted(present)
    imports = "".join(f"from {module} import {name}\n" for module, name in present.items())
    adapter = CACHELIB_ADAPTER.format(
        imports=imports.rstrip("\n"), url=memflask_url, classes=", ".join(present.values())
    )
    (tests / "test_memflask_cache.py").write_text(adapter)
    run_upstream_tests(project_root, "test_memflask_cache.py", tmp_path)


def test_flask_caching_generic_backend_tests_pass_on_memflask(memflask_url, tmp_path):
    project_root = unpack(source_distribution("flask-caching"), tmp_path / "flask-caching")
    adapter = FLASK_CACHING_ADAPTER.format(url=memflask_url)
    (project_root / "tests" / "test_memflask_backend.py").write_text(adapter)
    run_upstream_tests(project_root, "test_memflask_backend.py", tmp_path)
