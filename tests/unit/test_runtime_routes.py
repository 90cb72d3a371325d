"""A record route on fakes: decode, batches of up to 10, per-id order through throttling, bisection of a
rejected call, and every record's outcome (finished, or dead-lettered with its stage and operation)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from forwarder.config import RetryConfig, parse_config
from forwarder.keyed_batch import RoutedRecord
from forwarder.outcome import Envelope, Reason, Stage
from forwarder.personalize.errors import InvalidInput, Retryable
from forwarder.runtime.routes import RecordRoute, record_decoder
from forwarder.runtime.supervisor import Supervisor
from forwarder.send import Sender

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


class _Message:
    """The part of a Kafka message a route reads."""

    def __init__(self, value: bytes | None, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return "items"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1714566896000)


class _Origin:
    tp = ("items", 0)

    def __init__(self) -> None:
        self.finished: list[int] = []

    def finish(self, offset: int) -> None:
        self.finished.append(offset)


class _Transport:
    """PutItems in memory: throttles a share of calls at random, rejects calls holding a bad id."""

    def __init__(self, throttle: float, bad: str | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._rng = random.Random(3)
        self._throttle, self._bad = throttle, bad

    async def put_events(self, key: Any, events: Sequence[RoutedRecord]) -> None:
        await asyncio.sleep(self._rng.random() / 1000)  # calls overlap and finish out of order
        assert key == ARN
        if self._rng.random() < self._throttle:
            raise Retryable("ThrottlingException", "Rate exceeded", 400)
        if self._bad is not None and any(r.wire["itemId"] == self._bad for r in events):
            raise InvalidInput("InvalidInputException", "bad item", 400)
        self.calls.append([r.wire for r in events])

    async def close(self) -> None:
        pass


def _route(transport: _Transport) -> tuple[RecordRoute, list[tuple[int, Reason]], Supervisor]:
    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "k:1", "topics": ["t"]},
            "personalize": {"tracking_id": "trk"},
            "dead_letter": {"topic": "dlq"},
            "routes": [{"operation": "items", "topics": ["items"], "dataset_arn": ARN, "linger_ms": 5}],
        },
        environ={},
    )
    route_cfg = cfg.routes[0]
    retry = RetryConfig(initial_backoff_ms=1, max_backoff_ms=2, max_attempts=1000, max_elapsed_s=60)
    sender = Sender(transport, retry, route_cfg.max_in_flight)  # type: ignore[arg-type]
    dead: list[tuple[int, Reason]] = []
    supervisor = Supervisor()

    def dead_letter(source: Envelope, reason: Reason, session_id: str | None = None) -> None:
        dead.append((source.offset, reason))
        source.finish()

    loop = asyncio.get_running_loop()
    return (
        RecordRoute(route_cfg, record_decoder(route_cfg), sender, dead_letter, supervisor, loop.time),
        dead,
        supervisor,
    )


async def _run(
    values: Sequence[bytes | None], transport: _Transport
) -> tuple[_Origin, list[tuple[int, Reason]]]:
    route, dead, supervisor = _route(transport)
    origin = _Origin()
    for offset, value in enumerate(values):
        route.take(Envelope(_Message(value, offset), origin, offset))  # type: ignore[arg-type]
    for _ in range(2000):
        route.dispatch_due()
        if not route.load() and not supervisor.tasks:
            break
        await asyncio.sleep(0.002)
    return origin, dead


def test_each_id_keeps_its_order_through_throttling_and_every_call_holds_up_to_10() -> None:
    values = [json.dumps({"itemId": f"i{n % 13}", "version": n // 13}).encode() for n in range(400)]
    transport = _Transport(throttle=0.4)
    origin, dead = asyncio.run(_run(values, transport))
    assert not dead
    assert sorted(origin.finished) == list(range(400))
    assert all(1 <= len(call) <= 10 for call in transport.calls)
    assert all(len({r["itemId"] for r in call}) == len(call) for call in transport.calls), "one id per call"
    seen: dict[str, list[int]] = defaultdict(list)
    for call in transport.calls:
        for record in call:
            seen[record["itemId"]].append(json.loads(record["properties"])["version"])
    assert all(versions == sorted(versions) for versions in seen.values())
    assert sum(len(v) for v in seen.values()) == 400


def test_a_rejected_record_is_bisected_out_and_bad_input_is_dead_lettered_with_its_operation() -> None:
    values: list[bytes | None] = [json.dumps({"itemId": f"i{n}"}).encode() for n in range(10)]
    values += [None, b"[1]", json.dumps({"itemId": "x", "p": {"nested": 1}}).encode()]
    transport = _Transport(throttle=0.0, bad="i4")
    origin, dead = asyncio.run(_run(values, transport))
    assert sorted(origin.finished) == list(range(13))
    by_offset = dict(dead)
    assert set(by_offset) == {4, 10, 11, 12}
    assert {reason.operation for reason in by_offset.values()} == {"items"}
    assert by_offset[4].stage is Stage.API
    assert by_offset[10].stage is Stage.UNSUPPORTED
    assert by_offset[11].stage is Stage.DECODE
    assert by_offset[12].stage is Stage.VALIDATE
    assert by_offset[12].message.startswith("properties.p")
    assert sorted(r["itemId"] for call in transport.calls for r in call) == sorted(
        f"i{n}" for n in range(10) if n != 4
    )
