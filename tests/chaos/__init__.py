"""The chaos run: ``python -m tests.chaos`` (full, ~200,000 events) or tests/integration/test_chaos.py (the CI size)."""
