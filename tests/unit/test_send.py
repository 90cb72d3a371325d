"""Send: retries, bisection, exhaustion and outages, with a scripted transport (a unit test of the policy;
the transports themselves are tested against the emulator)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from confluent_kafka import Message

from forwarder.batch import Batch
from forwarder.config import RetryConfig
from forwarder.decode import Event, SessionKey
from forwarder.outcome import Envelope, Stage
from forwarder.personalize.errors import (
    InvalidInput,
    Outage,
    PutEventsError,
    Retryable,
    classify,
    unexpected_success,
)
from forwarder.send import Sender, SendResult

KEY = SessionKey("trk", "u", "s")
FAST_RETRY = RetryConfig(initial_backoff_ms=1, max_backoff_ms=5, max_attempts=4, outage_retry_interval_s=0.05)


def _events(n: int) -> list[Event]:
    return [
        Event(KEY, {"eventId": f"e{i}"}, b"{}", Envelope(Message(topic="t", partition=0, offset=i)), False)
        for i in range(n)
    ]


class ScriptedTransport:
    """Answers each call with what ``answer`` returns for the call's event ids."""

    def __init__(self, answer: Callable[[list[str], int], PutEventsError | None]) -> None:
        self.answer = answer
        self.calls: list[list[str]] = []

    async def put_events(self, key: SessionKey, events: Sequence[Event]) -> None:
        ids = [ev.wire["eventId"] for ev in events]
        self.calls.append(ids)
        error = self.answer(ids, len(self.calls))
        if error is not None:
            raise error

    async def close(self) -> None:
        pass


class Observer:
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.outages: list[bool] = []

    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        self.outcomes.append(outcome)

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        self.outages.append(active)


def _send(
    transport: ScriptedTransport, n: int, retry: RetryConfig = FAST_RETRY, observer: Observer | None = None
) -> SendResult:
    async def go() -> SendResult:
        sender = Sender(transport, retry, max_in_flight=4, observer=observer)
        return await sender.send(Batch(KEY, _events(n)))

    return asyncio.run(go())


def test_throttled_calls_are_retried_until_accepted() -> None:
    observer = Observer()
    transport = ScriptedTransport(
        lambda ids, n: Retryable("ThrottlingException", "Rate exceeded", 400) if n < 3 else None
    )
    result = _send(transport, 5, observer=observer)
    assert [ev.wire["eventId"] for ev in result.accepted] == ["e0", "e1", "e2", "e3", "e4"]
    assert result.failed == []
    assert result.calls == 3
    assert result.retries == 2
    assert observer.outcomes == ["throttled", "throttled", "ok"]


def test_a_rejected_batch_is_bisected_so_only_the_bad_event_is_dead_lettered() -> None:
    bad = {"e6"}
    transport = ScriptedTransport(
        lambda ids, n: (
            InvalidInput("InvalidInputException", "eventList[0].itemId: bad", 400) if bad & set(ids) else None
        )
    )
    result = _send(transport, 10)
    assert [ev.wire["eventId"] for ev in result.accepted] == [
        "e0",
        "e1",
        "e2",
        "e3",
        "e4",
        "e5",
        "e7",
        "e8",
        "e9",
    ]
    assert [(f.event.wire["eventId"], f.reason.stage, f.reason.error_class) for f in result.failed] == [
        ("e6", Stage.API, "InvalidInputException")
    ]
    assert "itemId" in result.failed[0].reason.message
    assert result.calls > 1
    assert result.retries == 0  # halves of a bisection are new calls, not retries
    # The session's order holds: calls go out left to right.
    flat = [i for call in transport.calls if not bad & set(call) for i in call]
    assert flat == sorted(flat, key=lambda i: int(i[1:]))


def test_exhausted_retries_dead_letter_the_whole_batch_with_the_attempt_count() -> None:
    transport = ScriptedTransport(lambda ids, n: Retryable("InternalFailure", "boom", 500))
    result = _send(transport, 3)
    assert result.accepted == []
    assert {f.reason.stage for f in result.failed} == {Stage.RETRY_EXHAUSTED}
    assert {f.reason.attempts for f in result.failed} == {FAST_RETRY.max_attempts}
    assert len(transport.calls) == FAST_RETRY.max_attempts
    assert result.retries == FAST_RETRY.max_attempts - 1


def test_block_mode_never_gives_up() -> None:
    retry = RetryConfig(initial_backoff_ms=1, max_backoff_ms=2, max_attempts=2, on_exhausted="block")
    transport = ScriptedTransport(lambda ids, n: Retryable("ServiceUnavailable", "", 503) if n < 20 else None)
    result = _send(transport, 2, retry)
    assert len(result.accepted) == 2
    assert result.calls == 20


def test_an_outage_is_ridden_out_without_dead_lettering() -> None:
    observer = Observer()
    transport = ScriptedTransport(
        lambda ids, n: Outage("ResourceNotFoundException", "tracking id not found", 404) if n < 4 else None
    )
    result = _send(transport, 4, observer=observer)
    assert len(result.accepted) == 4
    assert result.failed == []
    assert observer.outages == [True, False]
    assert result.calls == 4
    assert result.retries == 0  # outage probes are not retries


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "InvalidInputException", InvalidInput),
        (400, "ThrottlingException", Retryable),
        (429, "", Retryable),
        (500, "InternalFailure", Retryable),
        (503, "", Retryable),
        (404, "ResourceNotFoundException", Outage),
        (403, "AccessDeniedException", Outage),
        (400, "UnrecognizedClientException", Outage),
        (400, "SerializationException", InvalidInput),
        # botocore's transient codes and HTTP 408 are retried, never bisected and dead-lettered
        (400, "RequestTimeout", Retryable),
        (400, "RequestTimeoutException", Retryable),
        (400, "PriorRequestNotComplete", Retryable),
        (408, "", Retryable),
        (408, "RequestTimeout", Retryable),
        # a signature outside the service's time window: a fresh one at the probe, never dead letters
        (400, "RequestExpired", Outage),
        # a redirect: the endpoint is misconfigured
        (301, "", Outage),
        (302, "301", Outage),
        (307, "", Outage),
    ],
)
def test_classification(status: int, code: str, kind: type) -> None:
    assert type(classify(status, code, "m")) is kind


def test_prior_request_not_complete_slows_down_as_botocore_does() -> None:
    error = classify(400, "PriorRequestNotComplete", "m")
    assert isinstance(error, Retryable)
    assert error.throttled


@pytest.mark.parametrize(
    ("status", "payload", "ok"),
    [
        (200, b"", True),
        (200, b"{}", True),
        (204, b"", True),
        (202, b'{"unknown": 1}', True),
        (200, b"<html></html>", False),
        (201, b"[]", False),
        (200, b"null", False),
    ],
)
def test_a_2xx_is_a_success_only_with_the_operations_answer(status: int, payload: bytes, ok: bool) -> None:
    error = unexpected_success(status, payload)
    assert (error is None) is ok
    if error is not None:
        assert isinstance(error, Outage)
        assert error.code == "UnexpectedResponse"
