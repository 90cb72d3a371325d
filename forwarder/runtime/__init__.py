"""The runtime: one replica's parts and its lifecycle (see docs/architecture.md).

:func:`run_app` builds an :class:`App` on a fresh event loop and runs it to completion.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from forwarder.config import Config
from forwarder.metrics import Metrics
from forwarder.runtime.app import App
from forwarder.runtime.exit_deadline import ExitDeadline, exit_deadline_s
from forwarder.runtime.hooks import Hooks, RuntimeView

__all__ = ["App", "Hooks", "RuntimeView", "run_app", "run_bounded", "tune_gc"]

OnStop = Callable[[], object] | None


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the latency path.

    The pipeline's objects are freed by reference counting; the collector mostly re-walks what the imports
    created (boto3/botocore alone are hundreds of thousands of objects), so the start-up heap is frozen
    and the thresholds raised. The measured effect is in docs/benchmarks.md.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _main(cfg: Config, metrics: Metrics | None, hooks: Hooks | None, on_stop: OnStop) -> int:
    return await App(cfg, metrics, hooks, on_stop=on_stop).run()


def run_app(
    cfg: Config, metrics: Metrics | None = None, hooks: Hooks | None = None, on_stop: OnStop = None
) -> int:
    """Build and run a replica to completion on uvloop where it is installed (less CPU per PutEvents call
    than asyncio's own loop; see docs/benchmarks.md), else on asyncio's loop; return its exit code.
    ``on_stop`` is called at the first stop request (see :class:`App`)."""
    tune_gc()
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(_main(cfg, metrics, hooks, on_stop))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(cfg, metrics, hooks, on_stop))


def run_bounded(cfg: Config) -> int:
    """``forwarder run``: :func:`run_app` under an exit deadline, so that once a stop begins (a signal, a
    failure) the process is gone within ``shutdown.timeout_s`` + 15 s whatever hangs, and once the
    replica stopped, within 2 s (see :mod:`forwarder.runtime.exit_deadline`). For one replica per
    process only: the deadline ends the process."""
    deadline = ExitDeadline(exit_deadline_s(cfg.shutdown.timeout_s))
    code = run_app(cfg, on_stop=deadline.arm)
    deadline.stopped(code)
    return code
