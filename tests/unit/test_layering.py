"""The import rules of ARCHITECTURE.md hold: server -> actors -> protocols,
server -> storage -> protocols. Checked on the source, so a violation fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "protocols": {"protocols"},
    "actors": {"actors", "protocols"},
    "storage": {"storage", "protocols"},
}
OURS = {"protocols", "actors", "storage", "server"}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in sorted((ROOT / layer).rglob("*.py"))
        if (bad := _imported_packages(path) - ALLOWED[layer])
    }
    assert offenders == {}
