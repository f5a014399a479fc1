"""The code stays in units a reader can hold: no module over 400 lines, no class over 300,
no function over 80 (STYLE.md's bound; split by concern, as memflask/store/ was)."""

from __future__ import annotations

import ast
from pathlib import Path

import memflask

PACKAGE = Path(memflask.__file__).resolve().parent
MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES = 400, 300, 80


def oversized() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(PACKAGE.parent).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = MAX_FUNCTION_LINES
            else:
                continue
            size = node.end_lineno - node.lineno + 1
            if size > limit:
                found.append(f"{name}: {node.name} is {size} lines")
    return found


def test_no_module_class_or_function_is_over_its_bound():
    assert oversized() == []
