"""A non-editable install holds every module and static file of the source tree: the
package list is found, not written by hand, and the dashboard's files are package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness.servers import ROOT

SOURCE = ROOT / "memflask"


def files_under(folder: Path) -> set[str]:
    """Every file under `folder` but compiled ones, as paths relative to it."""
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_a_non_editable_install_holds_every_module_and_static_file(tmp_path):
    # From a copy, so the build leaves nothing in the checkout and finds nothing stale there.
    project = tmp_path / "project"
    shutil.copytree(SOURCE, project / "memflask", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    # pip builds it as a user's `pip install .` does, with the build backend it fetches.
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    result = subprocess.run(
        [*command, "--target", str(tmp_path / "site"), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    expected = files_under(SOURCE)
    assert {"serving/waitress.py", "web/dashboard/static/index.html", "py.typed"} <= expected
    assert files_under(tmp_path / "site" / "memflask") == expected
