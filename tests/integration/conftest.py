"""The integration tier: every test here needs the real broker of tests/conftest.py, so each is marked
``integration`` here (``-m "not integration"`` leaves them out) instead of in each file."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the items collected from this directory (the hook sees the whole session's items)."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
