"""The tests' helpers under their first import path; they live in :mod:`tests.harness` (import from
there in new code)."""

from tests.harness import *  # noqa: F403
