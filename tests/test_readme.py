"""The README's Quick start, run with curl against a real memflask: what it shows is true.

Each `$ curl ...` line of the Quick start's console block runs in order against a fresh
`python -m memflask` on a free loopback port, and its output is compared with the lines
shown under it: exactly, except for curl -i's Date header (compared by its form) and two
/stats fields that cannot be fixed in a README (see compare_stats).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from memflask import __version__
from tests.harness.servers import ROOT, free_port, wait_until_serving

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

README = ROOT / "README.md"


def quick_start() -> list[tuple[str, list[str]]]:
    """The Quick start's console block as (command, the output lines shown under it)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block, "the Quick start has no ```console block"
    examples: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            examples.append((line[2:], []))
        else:
            assert examples, f"output before any command: {line!r}"
            examples[-1][1].append(line)
    return [(command, trimmed(shown)) for command, shown in examples]


def trimmed(lines: list[str]) -> list[str]:
    """Without the blank lines that end an example (they separate examples on the page)."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


@pytest.fixture
def server(tmp_path):
    """A fresh `python -m memflask` with the default settings (an empty instance folder:
    a developer's instance/config.py stays out of it)."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "APP_ENV": "production",
        "MEMFLASK_INSTANCE_PATH": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "memflask"], cwd=ROOT, env=environment, stderr=subprocess.PIPE
    )
    try:
        wait_until_serving(port, process)
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=30)


def run(command: str, port: int) -> list[str]:
    """Run a README command (through the shell: it quotes) against the test's server."""
    assert command.startswith("curl "), f"not a curl example: {command!r}"
    command = command.replace("localhost:8000", f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in command, f"the example does not name localhost:8000: {command}"
    result = subprocess.run(
        ["sh", "-c", command + " --silent --show-error --max-time 10"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\r\n", "\n").split("\n")


def compare_headers_and_body(shown: list[str], real: list[str], command: str) -> None:
    """curl -i: every line exactly, but the Date header's value by its form."""
    shown_head, shown_body = head_and_body(shown)
    real_head, real_body = head_and_body(real)
    assert [without_date(line) for line in shown_head] == [
        without_date(line) for line in real_head
    ], command
    assert shown_body == real_body, command


HTTP_DATE = re.compile(r"Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT")


def without_date(line: str) -> str:
    return "Date: <an HTTP date>" if HTTP_DATE.fullmatch(line) else line


def head_and_body(lines: list[str]) -> tuple[list[str], list[str]]:
    blank = lines.index("") if "" in lines else len(lines)
    return lines[:blank], lines[blank + 1 :]


def compare_stats(shown: dict, real: dict) -> None:
    """/stats exactly, but `uptime` (seconds: 0 or 1 by chance) by its type, and `bytes`
    exactly only on CPython 3.11, where it was measured: it counts str objects as
    sys.getsizeof does, and 3.12 made their headers smaller."""
    assert set(shown) == set(real)
    assert isinstance(real["uptime"], int) and isinstance(shown["uptime"], int)
    if sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11):
        assert shown["bytes"] == real["bytes"]
    assert isinstance(real["bytes"], int) and real["bytes"] > 0
    assert shown["version"] == __version__
    volatile = {"uptime", "bytes"}
    assert {k: v for k, v in shown.items() if k not in volatile} == {
        k: v for k, v in real.items() if k not in volatile
    }


def test_the_quick_start_shows_what_memflask_answers(server):
    examples = quick_start()
    assert len(examples) >= 10, examples  # the block was found and read whole
    for command, shown in examples:
        real = trimmed(run(command, server))
        if " -i " in f" {command} ":
            compare_headers_and_body(shown, real, command)
        elif shown[:1] and shown[0].startswith("{") and "/stats" in command:
            assert len(shown) == 1 and len(real) == 1, command
            compare_stats(json.loads(shown[0]), json.loads(real[0]))
        else:
            assert shown == real, command
