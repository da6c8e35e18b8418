"""The house keeps its shape: data flows one way, and the pure middle imports no hardware or I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"

# module -> the monitor modules it must never import, directly or lazily inside a function.
FORBIDDEN = {
    "similarity": {"sources", "outputs", "events", "web", "integrations", "watch", "actions", "daemon", "detector"},
    "detector": {"sources", "outputs", "events", "web", "integrations", "watch", "actions", "daemon", "similarity"},
    "watch": {"sources", "outputs", "events", "web", "integrations", "actions", "daemon", "recovery", "cli"},
    "actions": {"sources", "web", "integrations", "daemon", "recovery", "cli"},
    "recovery": {"watch", "actions", "web", "integrations", "daemon", "cli"},
    "web": {"daemon", "watch", "actions", "sources", "recovery", "cli"},
    "integrations": {"daemon", "watch", "actions", "sources", "recovery", "cli"},
    "sources": {"daemon", "watch", "actions", "web", "integrations", "recovery", "cli", "similarity", "detector"},
    "daemon": {"cli", "web", "integrations"},
}


def imported(path: Path) -> set[str]:
    """The first component below ``monitor.`` of every monitor module ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(name.split(".")[1] for name in names if name.startswith("monitor."))
    return found


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_no_module_imports_one_above_it(module: str) -> None:
    target = PACKAGE / module
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    for path in files:
        wrong = (imported(path) - {module}) & FORBIDDEN[module]
        assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports {sorted(wrong)}"


def test_the_loop_stays_the_loop() -> None:
    lines = [line for line in (PACKAGE / "daemon.py").read_text().splitlines() if line.strip()]
    assert len(lines) <= 260, "daemon.py should hold the loop only: move the rest where it belongs"
