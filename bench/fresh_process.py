"""Memory figures each come from a fresh process: no earlier measurement's heap or
allocator arenas blur a process's growth in resident memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def child_result(module: str, *arguments: str) -> dict:
    """What `python -m module arguments`, run from the repository's root, prints as JSON."""
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def rss_bytes() -> int:
    """This process's resident memory now."""
    return psutil.Process().memory_info().rss
