"""The pump with a registry format, on the in-memory harness: a schema id not read yet is decoded in a
worker thread (the loop keeps turning), and a registry that does not answer is an input outage (pause,
hold in Kafka order, commit nothing past the held message, dead-letter nothing, resume by itself).

The registry is a stand-in parser (a unit test): values are ``0x00 + schema id + JSON``, ids it "has"
decode, others are unknown; ``down`` makes it raise ``RegistryUnavailable``; a first read of an id
sleeps ``fetch_s`` (the registry client's blocking HTTP call). Against the real registry, broker and
emulator: tests/integration/test_formats_e2e.py.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from forwarder.formats.base import FormatError, RegistryUnavailable
from forwarder.outcome import Stage
from forwarder.runtime import app as app_module
from forwarder.runtime.testing import Harness, wait_for
from tests.unit.runtime_support import TOPIC, runtime_config

TP = (TOPIC, 0)


class StandInRegistryParser:
    """The ``Parser`` contract (``__call__`` and ``needs_registry``) over an in-memory registry."""

    def __init__(self, ids: set[int], fetch_s: float = 0.0) -> None:
        self.ids = ids
        self.fetch_s = fetch_s
        self.down = False
        self.known_ids: set[int] = set()
        self.threads: set[str] = set()  # where a first read (the blocking fetch) ran
        self.tries = 0

    def __call__(self, value: bytes, message: Message) -> Any:
        schema_id = struct.unpack(">I", value[1:5])[0]
        if schema_id not in self.known_ids:
            self.tries += 1
            self.threads.add(threading.current_thread().name)
            if self.down:
                raise RegistryUnavailable(f"schema registry unreachable for schema id {schema_id}")
            time.sleep(self.fetch_s)
            if schema_id not in self.ids:
                raise FormatError("UnknownSchema", f"value: schema id {schema_id} is not in the registry")
            self.known_ids.add(schema_id)
        return orjson.loads(value[5:])

    def needs_registry(self, value: bytes, message: Message) -> bool:
        return value[0] == 0 and struct.unpack(">I", value[1:5])[0] not in self.known_ids


def record(schema_id: int, session: str, n: int) -> bytes:
    body = {"sessionId": session, "userId": "u", "eventType": "click", "sentAt": 1714566896}
    return b"\x00" + struct.pack(">I", schema_id) + orjson.dumps({**body, "eventId": f"{session}-{n}"})


@pytest.fixture
def parser(monkeypatch: pytest.MonkeyPatch) -> StandInRegistryParser:
    made = StandInRegistryParser({1, 2})
    monkeypatch.setattr(app_module, "parser_for", lambda _input, _topics: made)
    return made


def test_an_unreachable_registry_pauses_holds_in_order_and_resumes_by_itself(
    parser: StandInRegistryParser,
) -> None:
    async def run() -> None:
        parser.down = True
        cfg = runtime_config(kafka={"poll_batch_size": 5})
        async with Harness(cfg) as h:
            await h.source.assign([TP])
            values = [record(1 if n < 10 else 2, "s", n) for n in range(20)]
            parser.known_ids.add(1)  # id 1 was read before the outage; id 2 was not
            h.source.append(TP, values)
            await wait_for(lambda: h.app.pump.input_outage is not None, what="input outage")
            await wait_for(lambda: h.app.flow.paused, what="paused in the input outage")
            await wait_for(lambda: h.source.polls_paused > 3, what="polling goes on while paused")
            ready, why = h.app.health.readiness()
            assert not ready
            assert "input outage" in why
            assert "schema registry" in why
            await wait_for(lambda: len(h.transport.accepted) == 10, what="the messages before it sent")
            await asyncio.sleep(0.6)  # several tries with backoff, all failing
            assert parser.tries >= 2, "the decode is tried again"
            assert h.source.committed.get(TP) == 10, "no commit past the held message"
            assert h.dead_letters.records == [], "an outage dead-letters nothing"
            assert h.app.tracker.unfinished() == 1, "one message held and tracked, the rest not taken"

            parser.down = False
            await wait_for(lambda: h.source.committed.get(TP) == 20, timeout=10, what="everything committed")
            assert h.app.pump.input_outage is None
            assert h.app.health.input_outage is None
            assert h.app.health.readiness()[0]
            await wait_for(lambda: not h.app.flow.paused, what="consumption resumed")
        ids = [e.wire["eventId"] for e in h.transport.accepted]
        assert ids == [f"s-{n}" for n in range(20)], "every event, in Kafka order"
        assert h.dead_letters.records == []

    asyncio.run(run())


def test_a_first_schema_fetch_runs_in_a_worker_thread_and_the_loop_keeps_turning(
    parser: StandInRegistryParser,
) -> None:
    parser.fetch_s = 0.8

    async def run() -> None:
        loop = asyncio.get_running_loop()
        async with Harness(runtime_config()) as h:
            await h.source.assign([TP])
            await wait_for(lambda: h.app.health.last_tick > 0, what="ticking")
            h.source.append(TP, [record(1, "s", n) for n in range(5)])
            longest = 0.0
            last = loop.time()
            while len(h.transport.accepted) < 5:
                await asyncio.sleep(0.01)
                now = loop.time()
                longest = max(longest, now - last)
                assert h.app.health.liveness()[0]
                last = now
                assert now < loop.time() + 10
            # The fetch blocked its thread for 0.8 s; the loop did not wait on it.
            assert longest < 0.3, f"the event loop stalled {longest:.2f}s during a schema fetch"
        assert parser.threads
        assert threading.main_thread().name not in parser.threads
        assert [e.wire["eventId"] for e in h.transport.accepted] == [f"s-{n}" for n in range(5)]

    asyncio.run(run())


def test_an_unknown_schema_id_is_dead_lettered_with_its_original_bytes(
    parser: StandInRegistryParser,
) -> None:
    async def run() -> None:
        async with Harness(runtime_config()) as h:
            await h.source.assign([TP])
            values = [record(1, "s", 0), record(77, "s", 1), record(1, "s", 2)]
            h.source.append(TP, values)
            await wait_for(lambda: h.source.committed.get(TP) == 3, what="everything finished")
        ((message, reason, _session),) = h.dead_letters.records
        assert message.value() == values[1], "the original bytes, for a replay after a fix"
        assert (reason.stage, reason.error_class) == (Stage.DECODE, "UnknownSchema")
        assert "schema id 77" in reason.message
        assert [e.wire["eventId"] for e in h.transport.accepted] == ["s-0", "s-2"]

    asyncio.run(run())
