"""The exit deadline (issue #17): once a stop begins the process ends within a bound, whatever hangs;
once the replica stopped, within moments and with its own exit code. The exit is injected here."""

from __future__ import annotations

import threading
import time

from forwarder.runtime.exit_deadline import AFTER_DRAIN_S, EXIT_CODE, ExitDeadline, exit_deadline_s
from forwarder.runtime.supervisor import Supervisor


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.done.set()


def test_the_bound_is_the_drain_plus_the_rest_of_the_stop() -> None:
    assert exit_deadline_s(30.0) == 30.0 + AFTER_DRAIN_S
    assert exit_deadline_s(30.0) < 60, "below the Deployment's terminationGracePeriodSeconds"


def test_a_stop_that_hangs_is_ended_at_the_deadline() -> None:
    exits = Exits()
    deadline = ExitDeadline(0.2, exit=exits)
    supervisor = Supervisor(on_stop=deadline.arm)
    assert not deadline.armed
    supervisor.request_stop("SIGTERM")
    supervisor.request_stop("SIGTERM again")  # armed once
    assert exits.done.wait(5)
    time.sleep(0.3)
    assert exits.codes == [EXIT_CODE]


def test_a_replica_that_stopped_exits_with_its_code_without_waiting_for_threads() -> None:
    exits = Exits()
    deadline = ExitDeadline(60, exit=exits)
    deadline.arm()
    started = time.monotonic()
    deadline.stopped(0)
    assert exits.done.wait(5)
    assert exits.codes == [0]
    assert time.monotonic() - started < 3


def test_nothing_fires_before_a_stop_is_requested() -> None:
    exits = Exits()
    deadline = ExitDeadline(0.05, exit=exits)
    Supervisor(on_stop=deadline.arm)
    time.sleep(0.2)
    assert not deadline.armed
    assert exits.codes == []
    deadline.arm()
    deadline.cancel()
    time.sleep(0.2)
    assert exits.codes == []
