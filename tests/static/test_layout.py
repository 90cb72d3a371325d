"""The test tree keeps its tiers: every test file in the directory of its tier, and only the integration
tier asks for the broker."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness import REPO

TESTS = REPO / "tests"
# containers: make test-containers, outside `make test` (pyproject.toml excludes it from its collection).
TIERS = ("unit", "component", "integration", "static", "containers")
BROKER_FIXTURES = {"broker", "bootstrap"}


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _fixtures_asked(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    asked: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            asked.update(arg.arg for arg in node.args.args)
    return asked


def test_every_test_file_is_in_a_tier_directory() -> None:
    files = _test_files()
    assert files, "no test files found"
    misplaced = [str(p.relative_to(TESTS)) for p in files if p.relative_to(TESTS).parts[0] not in TIERS]
    assert misplaced == [], f"put each test file in tests/<tier>/ ({', '.join(TIERS)})"


def test_every_tier_is_a_package() -> None:
    for tier in TIERS:
        assert (TESTS / tier / "__init__.py").is_file(), tier


def test_only_the_integration_tier_asks_for_the_broker() -> None:
    outside = {
        str(p.relative_to(TESTS)): sorted(BROKER_FIXTURES & _fixtures_asked(p))
        for p in _test_files()
        if p.relative_to(TESTS).parts[0] != "integration"
    }
    assert {name: asked for name, asked in outside.items() if asked} == {}
