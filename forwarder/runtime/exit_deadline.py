"""The exit deadline: once a replica begins to stop, the process is gone within a bound, whatever hangs.

The graceful stop is bounded step by step (the drain by ``shutdown.timeout_s``, the dead-letter flush by
5 s), but not everything it waits for can be bounded from the event loop: a ``boto3`` call runs in a
thread that cannot be cancelled and the interpreter joins that thread at exit; a librdkafka call in the
consumer thread (a commit, ``close()``) may wait on a broker that does not answer. So a timer thread,
armed by the first stop request, ends the process with ``os._exit`` at :func:`exit_deadline_s`.
Nothing is lost by it: what did not finish is not committed and is delivered again by the next owner.
The bound stays below Kubernetes' ``terminationGracePeriodSeconds`` (60 s in deploy/) at the default
``shutdown.timeout_s`` (30 s), so the pod is never SIGKILLed mid-commit by the kubelet first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("forwarder.runtime")

# After the drain: the last commit, leaving the group (a final revoke), the dead-letter flush (5 s) and
# closing the sender.
AFTER_DRAIN_S = 15.0
EXIT_CODE = 70  # EX_SOFTWARE: the graceful stop did not finish in time
# Once the replica stopped (committed, left the group), what may still hold the interpreter is a thread
# in a call whose answer no longer matters: the process gets this long to exit by itself.
AFTER_STOPPED_S = 2.0


def exit_deadline_s(shutdown_timeout_s: float) -> float:
    """Seconds from the stop request to the forced exit."""
    return shutdown_timeout_s + AFTER_DRAIN_S


class ExitDeadline:
    """A one-shot timer: :meth:`arm` starts it (idempotent); when it fires, the process exits at once.

    ``exit`` is ``os._exit`` (no cleanup: the cleanup is what hangs); tests inject their own."""

    def __init__(self, seconds: float, exit: Callable[[int], object] = os._exit) -> None:
        self.seconds = seconds
        self._exit = exit
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._armed_at = 0.0
        self._code = EXIT_CODE
        self._why = f"the stop did not finish within {seconds:.0f}s (something hangs: a PutEvents call in a "
        self._why += "thread, a broker); unfinished messages are not committed and will be redelivered"

    @property
    def armed(self) -> bool:
        """Whether the timer runs."""
        return self._timer is not None

    def arm(self) -> None:
        """Start the countdown (the first call only). Safe from any thread, and from a signal handler."""
        with self._lock:
            if self._timer is not None:
                return
            self._armed_at = time.monotonic()
            self._timer = timer = self._start(self.seconds)
        timer.start()

    def _start(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self._expire)
        timer.daemon = True  # never what keeps the process alive
        timer.name = "exit-deadline"
        return timer

    def stopped(self, exit_code: int) -> None:
        """The replica stopped (its exit code is decided): the process exits with it within
        :data:`AFTER_STOPPED_S` (or the deadline, if sooner), even if a thread still waits on a call."""
        with self._lock:
            old = self._timer
            if old is not None:
                old.cancel()
                left = self.seconds - (time.monotonic() - self._armed_at)
            else:
                self._armed_at, left = time.monotonic(), self.seconds
            self._code = exit_code
            self._why = (
                "stopped; a thread still waits on a call whose answer is not needed: exiting without it"
            )
            self._timer = timer = self._start(max(0.0, min(AFTER_STOPPED_S, left)))
        timer.start()

    def cancel(self) -> None:
        """Stop the countdown (tests; a real replica leaves it armed until the process ends)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _expire(self) -> None:
        log.log(
            logging.ERROR if self._code == EXIT_CODE else logging.WARNING,
            "%s (exit %d)",
            self._why,
            self._code,
        )
        logging.shutdown()
        self._exit(self._code)
