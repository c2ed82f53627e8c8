"""Imports flow one way: governance <- audits <- update_pipeline <- dashboard."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ORDER = ["governance", "audits", "update_pipeline", "dashboard"]


@pytest.mark.parametrize("pkg", ORDER)
def test_imports_flow_one_way(pkg):
    forbidden = set(ORDER[ORDER.index(pkg) + 1:])
    for path in (ROOT / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.relative_to(ROOT)} imports {name}"


def test_modules_stay_small():
    for pkg in ORDER:
        for path in (ROOT / pkg).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 300, path
