"""The per-tracker outage state (forwarder/outages.py) with an injected clock, and the sender's scoping of
outages around a scripted transport: the configured tracker's outage stops every batch, another tracker's
only its own, and expires after ``retry.outage_max_s`` into dead letters of stage ``outage``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from confluent_kafka import Message

from forwarder.batch import Batch
from forwarder.config import RetryConfig
from forwarder.decode import Event, SessionKey
from forwarder.outages import Outages, ProbeSchedule
from forwarder.outcome import Envelope, Stage
from forwarder.personalize.errors import Outage
from forwarder.send import Sender, SendResult

NOT_FOUND = Outage("ResourceNotFoundException", "Tracking ID not found", 404)
DENIED = Outage("AccessDeniedException", "not allowed", 403)
NO_CREDENTIALS = Outage("NoCredentials", "AWS credentials: none", None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _outages(clock: Clock, max_s: float = 60.0) -> Outages:
    return Outages("mine", first_probe_s=1.0, interval_s=30.0, max_s=max_s, clock=clock)


def test_probes_start_at_one_second_and_double_up_to_the_interval() -> None:
    schedule = ProbeSchedule(1.0, 30.0)
    assert [schedule.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert ProbeSchedule(5.0, 2.0).next_delay() == 2.0  # never above the interval


def test_only_a_foreign_trackers_not_found_or_denied_is_scoped_to_it() -> None:
    outages = _outages(Clock())
    assert outages.scope_of("typo", NOT_FOUND) == "typo"
    assert outages.scope_of("typo", DENIED) == "typo"
    assert outages.scope_of("typo", NO_CREDENTIALS) == "mine"  # credentials are the replica's
    assert outages.scope_of("mine", NOT_FOUND) == "mine"
    unscoped = Outages(None, 1.0, 30.0, 60.0, Clock())
    assert unscoped.scope_of("typo", NOT_FOUND) == unscoped.global_scope


def test_a_foreign_trackers_outage_expires_after_the_bound_and_the_configured_one_never() -> None:
    clock = Clock()
    outages = _outages(clock, max_s=60.0)
    typo, new = outages.begin("typo", NOT_FOUND)
    assert new
    assert outages.global_outage is None
    assert outages.scoped == [typo]
    assert outages.begin("typo", NOT_FOUND) == (typo, False)
    clock.now += 59.0
    assert outages.remaining(typo) == 1.0
    assert not outages.expired(typo)
    clock.now += 1.0
    assert outages.expired(typo)
    expiry = outages.expiry(typo)
    assert expiry.code == "ResourceNotFoundException"
    assert "'typo' refused for 60s" in expiry.message
    assert "retry.outage_max_s 60" in expiry.message

    mine, _ = outages.begin("mine", NO_CREDENTIALS)
    assert outages.global_outage is mine
    clock.now += 10_000.0
    assert outages.remaining(mine) is None
    assert not outages.expired(mine)
    assert not outages.expired(typo), "nothing expires while the replica itself is in an outage"
    assert outages.end(mine)
    assert not outages.end(mine)
    assert outages.global_outage is None
    assert not mine.active
    assert outages.expired(typo)


# ---- the sender around a scripted transport -----------------------------------------------------

RETRY = RetryConfig(
    initial_backoff_ms=1,
    max_backoff_ms=5,
    max_attempts=3,
    outage_first_probe_s=0.02,
    outage_retry_interval_s=0.05,
    outage_max_s=0.4,
)


class TrackerService:
    """Refuses the tracking ids in ``refused`` with the given error; records each call's tracking id."""

    def __init__(self, refused: dict[str, Outage], everything: Outage | None = None) -> None:
        self.refused = refused
        self.everything = everything  # refuses every call (credentials) while set
        self.calls: list[str] = []

    async def put_events(self, key: SessionKey, events: Sequence[Event]) -> None:
        self.calls.append(key.tracking_id)
        await asyncio.sleep(0)
        error = self.everything or self.refused.get(key.tracking_id)
        if error is not None:
            raise error

    async def close(self) -> None:
        pass


def _batch(tracking_id: str, session: str, n: int = 2) -> Batch:
    key = SessionKey(tracking_id, "u", session)
    envelope = Envelope(Message(topic="t", partition=0, offset=0))
    return Batch(key, [Event(key, {"eventId": f"{session}-{i}"}, b"{}", envelope, False) for i in range(n)])


def test_a_foreign_tracker_waits_alone_and_its_events_end_as_outage_dead_letters() -> None:
    service = TrackerService({"typo": NOT_FOUND})

    async def go() -> tuple[SendResult, list[float], float, bool]:
        sender = Sender(service, RETRY, max_in_flight=4, tracking_id="mine")
        started = time.monotonic()
        typo = asyncio.create_task(sender.send(_batch("typo", "a")))
        await asyncio.sleep(0.05)
        assert sender.outages.get("typo") is not None
        assert not sender.in_outage, "another tracker's outage is not the replica's"
        done_at = []
        for i in range(5):  # the configured tracker's sessions keep flowing meanwhile
            result = await sender.send(_batch("mine", f"s{i}"))
            assert len(result.accepted) == 2
            done_at.append(time.monotonic() - started)
        typo_result = await typo
        return typo_result, done_at, time.monotonic() - started, sender.in_outage

    result, done_at, elapsed, in_outage = asyncio.run(go())
    assert max(done_at) < 0.3, "the other sessions did not wait for the typo's outage"
    assert result.accepted == []
    assert [f.reason.stage for f in result.failed] == [Stage.OUTAGE, Stage.OUTAGE]
    reason = result.failed[0].reason
    assert reason.error_class == "ResourceNotFoundException"
    assert "'typo'" in reason.message
    assert reason.attempts >= 2
    assert 0.35 <= elapsed < 2.0
    assert not in_outage
    assert service.calls.count("typo") < 12, "a slow probe, not a storm"


def test_after_expiry_a_batch_of_that_tracker_makes_one_call_and_one_that_gets_through_ends_it() -> None:
    service = TrackerService({"typo": DENIED})

    async def go() -> None:
        sender = Sender(service, RETRY, max_in_flight=4, tracking_id="mine")
        first = await sender.send(_batch("typo", "a"))
        assert [f.reason.stage for f in first.failed] == [Stage.OUTAGE] * 2
        calls = len(service.calls)
        late = await sender.send(_batch("typo", "b"))
        assert [f.reason.stage for f in late.failed] == [Stage.OUTAGE] * 2
        assert len(service.calls) == calls + 1, "once expired: one call per batch, no holding"
        service.refused.clear()  # the operator creates the tracker
        fixed = await sender.send(_batch("typo", "c"))
        assert len(fixed.accepted) == 2
        assert sender.outages.get("typo") is None

    asyncio.run(go())


def test_the_configured_trackers_outage_holds_everything_and_never_expires() -> None:
    service = TrackerService({"mine": NOT_FOUND})
    outages: list[tuple[bool, str]] = []

    class Observer:
        def call_finished(self, outcome: str, events: int, seconds: float) -> None:
            pass

        def outage(self, active: bool, reason: str, tracking_id: str) -> None:
            outages.append((active, tracking_id))

    async def go() -> list[SendResult]:
        sender = Sender(service, RETRY, max_in_flight=4, tracking_id="mine", observer=Observer())
        tasks = [asyncio.create_task(sender.send(_batch("mine", "a")))]
        await asyncio.sleep(0.05)
        assert sender.in_outage
        tasks.append(asyncio.create_task(sender.send(_batch("other", "b"))))
        await asyncio.sleep(0.8)  # twice outage_max_s
        assert sender.in_outage
        assert not any(task.done() for task in tasks), "the replica's outage holds every batch"
        service.refused.clear()
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(go())
    assert all(len(r.accepted) == 2 and not r.failed for r in results)
    assert outages == [(True, "mine"), (False, "mine")]


def test_a_blip_is_ridden_out_in_about_the_first_probe() -> None:
    retry = RetryConfig(outage_first_probe_s=0.05, outage_retry_interval_s=30.0)
    service = TrackerService({"mine": NOT_FOUND})

    async def go() -> float:
        sender = Sender(service, retry, max_in_flight=4, tracking_id="mine")
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, service.refused.clear)
        started = time.monotonic()
        result = await sender.send(_batch("mine", "a"))
        assert len(result.accepted) == 2
        return time.monotonic() - started

    assert asyncio.run(go()) < 1.0, "the first probe comes after outage_first_probe_s, not the interval"


def test_a_replica_outage_probed_by_another_trackers_batch_ends_when_only_that_tracker_is_refused() -> None:
    # The credentials fail while a batch of an unknown tracker is the first to call: it probes the
    # replica's outage. When the credentials come back its own tracker is still refused: that must end the
    # replica's outage (the configured tracker's batches go) and leave the batch to its tracker's.
    service = TrackerService({"typo": NOT_FOUND}, everything=NO_CREDENTIALS)

    async def go() -> tuple[SendResult, SendResult]:
        sender = Sender(service, RETRY, max_in_flight=4, tracking_id="mine")
        typo = asyncio.create_task(sender.send(_batch("typo", "a")))
        await asyncio.sleep(0.05)
        assert sender.in_outage
        mine = asyncio.create_task(sender.send(_batch("mine", "b")))
        await asyncio.sleep(0.05)
        service.everything = None
        done = await asyncio.wait_for(mine, 2.0)
        assert not sender.in_outage
        return done, await asyncio.wait_for(typo, 5.0)

    mine, typo = asyncio.run(go())
    assert len(mine.accepted) == 2
    assert [f.reason.stage for f in typo.failed] == [Stage.OUTAGE] * 2


def test_that_batch_goes_on_probing_its_trackers_outage_so_a_fix_in_time_delivers_it() -> None:
    service = TrackerService({"typo": NOT_FOUND}, everything=NO_CREDENTIALS)

    async def go() -> SendResult:
        sender = Sender(service, RETRY, max_in_flight=4, tracking_id="mine")
        typo = asyncio.create_task(sender.send(_batch("typo", "a")))
        await asyncio.sleep(0.05)
        service.everything = None
        await asyncio.sleep(0.1)
        assert sender.outages.get("typo") is not None
        service.refused.clear()  # the tracker is created well before outage_max_s
        return await asyncio.wait_for(typo, 2.0)

    assert len(asyncio.run(go()).accepted) == 2
