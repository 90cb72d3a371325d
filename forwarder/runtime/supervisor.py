"""Supervisor: the replica's stop request, its exit code, and the background tasks it must not lose.

Every task the runtime starts (sends, commits, lag, the ticker) goes through :meth:`Supervisor.spawn`. A
task that fails is a bug, not a delivery outcome: its messages stay unfinished (never committed past), and
the replica stops with exit code 1 so that a supervisor process restarts it and they are read again.
A fatal Kafka client error stops it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import KafkaError

from forwarder.logs import kafka_logger

log = logging.getLogger("forwarder.runtime")


class Supervisor:
    """Stop requests, the exit code and the set of running tasks. Flags only: safe from any thread."""

    def __init__(self, on_stop: Callable[[], object] | None = None) -> None:
        self._on_stop = on_stop  # called once, at the first stop request (it arms the exit deadline)
        self.stopping = False
        self.exit_code = 0
        self.failure: str | None = None  # why it stops with exit 1 (liveness reports it)
        self.tasks: set[asyncio.Task[Any]] = set()

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop (idempotent)."""
        if not self.stopping:
            log.info(
                "stopping (%s): no more polling; flushing, waiting for in-flight calls, committing", reason
            )
            if self._on_stop is not None:
                self._on_stop()
        self.stopping = True

    def fail(self, reason: str) -> None:
        """Stop with exit code 1."""
        self.exit_code = 1
        if self.failure is None:
            self.failure = reason
        self.request_stop(reason)

    def spawn(self, coro: Coroutine[Any, Any, object], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` on the running loop; a failure of it stops the replica (see the module's doc)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.task_done)
        return task

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """The done callback of every task: forget it; a failed one stops the replica with exit 1."""
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("internal error in task %s; stopping", task.get_name(), exc_info=exc)
            self.fail("internal error")

    def kafka_error(self, err: KafkaError, client: str) -> None:
        """Log a client error; a fatal one (the client is unusable from now on) stops the replica, exit 1.

        The error callback reports a fatal error as code ``_FATAL`` with ``fatal()`` False (a fenced
        static member arrives so), so the code counts as much as the flag."""
        if err.fatal() or err.code() == KafkaError._FATAL:
            log.critical("fatal Kafka error (%s): %s", client, err.str())
            self.fail(f"fatal Kafka error in the {client}")
        else:
            kafka_logger().warning("kafka (%s): %s", client, err.str())

    async def cancel_all(self) -> None:
        """Cancel what is still running and wait for it (the end of a shutdown)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
