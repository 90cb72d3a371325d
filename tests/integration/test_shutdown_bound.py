"""A SIGTERM finishes within a bound even when the service hangs (issue #17): every PutEvents call waits
far longer than the whole shutdown may take. The replica drains for ``shutdown.timeout_s``, commits what
finished, leaves the group and exits — it is not held by the calls still waiting. Both transports (the
``boto3`` one runs its calls in threads, which cannot be cancelled)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from forwarder.runtime.exit_deadline import exit_deadline_s
from tests.harness import wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 3.0


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_sigterm_exits_within_its_bound_while_the_service_hangs(
    bootstrap: str, tmp_path: Path, transport: str
) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "hang",
        emulator_args=("--latency-ms", "600000"),  # a service that never answers
        extra={
            "personalize": {"transport": transport, "request_timeout_s": 600},
            "retry": {"max_elapsed_s": 3600},
            "shutdown": {"timeout_s": SHUTDOWN_TIMEOUT_S},
        },
    )
    emulator = p.emulator
    events = [
        {"eventId": f"ev-{i}", "sessionId": f"s-{i % 50}", "eventType": "view", "sentAt": 1714566896 + i}
        for i in range(200)
    ]
    p.produce_events(events)
    with p.run() as replica:
        wait_for(lambda: "assigned" in replica.log_text(), 30, what="assignment")
        wait_for(lambda: emulator.stats()["requests"] > 0, 30, what="calls waiting on the service")
        time.sleep(1)
        started = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        try:
            code = replica.proc.wait(exit_deadline_s(SHUTDOWN_TIMEOUT_S) + 10)
        except Exception:
            raise AssertionError(f"no exit after SIGTERM: {replica.log_text()[-3000:]}") from None
        took = time.monotonic() - started
    print(f"{transport}: exit {code} after {took:.1f} s")
    # The stop itself: the drain (3 s), the revoke's own budget, the commit; then the threads still in
    # calls (boto3's) do not hold the exit: exit 0, as the replica did stop cleanly.
    assert took <= exit_deadline_s(SHUTDOWN_TIMEOUT_S), replica.log_text()[-3000:]
    assert code == 0, replica.log_text()[-3000:]
    assert "unfinished at the shutdown deadline" in replica.log_text()
