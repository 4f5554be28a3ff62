"""docs/promises.md names, for every promise, the tests that would fail if it broke: each of
them must exist — its file, and a test function of that name in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "promises.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    """Test functions defined at the top of a module (sync or async)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_promises_name_exists() -> None:
    named = NAMED.findall(PAGE.read_text(encoding="utf-8"))
    assert len(named) > 100  # the page is read, and names what it should
    missing = []
    for file, function in named:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file}: no such file")
        elif function not in _tests_in(path):
            missing.append(f"{file}::{function}: no such test")
    assert missing == []


def test_every_row_names_a_test() -> None:
    rows = [
        line
        for line in PAGE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| promise")
    ]
    assert rows
    assert [row for row in rows if not NAMED.search(row)] == []
