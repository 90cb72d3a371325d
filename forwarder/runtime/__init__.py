"""The runtime: one replica's parts and its lifecycle (see docs/architecture.md).

:func:`run_app` builds an :class:`App` on a fresh event loop and runs it to completion.
"""

from __future__ import annotations

import asyncio
import gc

from forwarder.config import Config
from forwarder.metrics import Metrics
from forwarder.runtime.app import App
from forwarder.runtime.hooks import Hooks, RuntimeView

__all__ = ["App", "Hooks", "RuntimeView", "run_app", "tune_gc"]


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the latency path.

    The pipeline's objects are freed by reference counting; the collector mostly re-walks what the imports
    created (boto3/botocore alone are hundreds of thousands of objects), so the start-up heap is frozen
    and the thresholds raised. The measured effect is in docs/benchmarks.md.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _main(cfg: Config, metrics: Metrics | None, hooks: Hooks | None) -> int:
    return await App(cfg, metrics, hooks).run()


def run_app(cfg: Config, metrics: Metrics | None = None, hooks: Hooks | None = None) -> int:
    """Build and run a replica to completion on uvloop where it is installed (less CPU per PutEvents call
    than asyncio's own loop; see docs/benchmarks.md), else on asyncio's loop; return its exit code."""
    tune_gc()
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(_main(cfg, metrics, hooks))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(cfg, metrics, hooks))
