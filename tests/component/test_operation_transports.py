"""Both transports send PutItems, PutUsers, PutActions and PutActionInteractions to the emulator (in
process, on a loopback socket): the emulator accepts each call and records the body boto3's params
describe; an invalid record comes back as :class:`InvalidInput` naming its field, an unknown dataset as
an :class:`Outage`, from either transport alike."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from forwarder.config import PersonalizeConfig
from forwarder.emulator.server import bind_socket, format_url, serve
from forwarder.emulator.service import Emulator, Faults
from forwarder.personalize.boto3_transport import Boto3Transport
from forwarder.personalize.errors import InvalidInput, Outage, PutEventsError
from forwarder.personalize.fast_transport import FastTransport
from forwarder.personalize.operations import Operation, operation
from forwarder.records.action_interactions import ActionInteractionDecoder
from forwarder.records.actions import ActionDecoder
from forwarder.records.common import Problem
from forwarder.records.items import ItemDecoder
from forwarder.records.users import UserDecoder
from tests.support import AWS_TEST_ENV

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
TRANSPORTS: dict[str, type[Boto3Transport] | type[FastTransport]] = {
    "boto3": Boto3Transport,
    "fast": FastTransport,
}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _records(route: str, n: int) -> tuple[str, list[Any]]:
    """(batch key, n decoded records) of the operation called ``route``."""
    results: list[Any]
    if route == "action_interactions":
        decoder = ActionInteractionDecoder()
        results = [
            decoder.decode(
                {"actionId": f"a-{i}", "sessionId": f"s-{i % 3}", "userId": i, "eventType": "Taken"},
                event_id=f"t:0:{i}",
                timestamp=1714566896.25 + i,
            )
            for i in range(n)
        ]
        key = "trk"
    else:
        catalog = {"items": (ItemDecoder(), "itemId"), "users": (UserDecoder(), "userId")}
        catalog_decoder, id_field = catalog.get(route, (ActionDecoder(), "actionId"))
        results = [
            catalog_decoder.decode(
                {id_field: f"id-{i}", "genre": ["Horror", "Action"], "note": "caf\u00e9 \U0001f600"}
            )
            for i in range(n)
        ]
        key = ARN
    assert not any(isinstance(r, Problem) for r in results), results
    return key, results


def _call(
    emulator: Emulator, transport: str, op: Operation[Any, Any], key: str, records: Sequence[Any]
) -> PutEventsError | None:
    """One call through ``transport`` to ``emulator`` served on a loopback socket; the error, if any."""

    async def go() -> PutEventsError | None:
        sock = bind_socket("127.0.0.1", 0)
        url = format_url("127.0.0.1", sock.getsockname()[1])
        stop = asyncio.Event()
        ready = asyncio.Event()
        server = asyncio.create_task(serve(emulator, sock, stop=stop, ready=ready.set, grace=0.5))
        await asyncio.wait_for(ready.wait(), 10)
        cfg = PersonalizeConfig.model_validate(
            {"tracking_id": "trk", "region": "us-east-1", "endpoint_url": url, "request_timeout_s": 5}
        )
        sender = TRANSPORTS[transport](cfg, op)
        try:
            await asyncio.wait_for(sender.put_events(key, records), 15)
            return None
        except PutEventsError as exc:
            return exc
        finally:
            await sender.close()
            stop.set()
            await asyncio.wait_for(server, 10)

    return asyncio.run(go())


ROUTES = ["items", "users", "actions", "action_interactions"]


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("route", ROUTES)
def test_each_operation_is_sent_by_each_transport(route: str, transport: str) -> None:
    op = operation(route)
    key, records = _records(route, 10)
    record = io.BytesIO()
    emulator = Emulator(record=record)
    assert _call(emulator, transport, op, key, records) is None
    (line,) = record.getvalue().splitlines()
    recorded = orjson.loads(line)
    assert recorded.pop("operation") == op.name
    assert recorded == orjson.loads(op.body(key, records)) == op.params(key, records)
    assert emulator.operation_stats[op.name].accepted_events == 10


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_errors_are_the_same_kinds_for_every_operation(transport: str) -> None:
    key, records = _records("items", 2)
    too_long = records[1].__class__(
        records[1].record_id, {"itemId": "x" * 257}, orjson.dumps({"itemId": "x" * 257})
    )
    error = _call(Emulator(), transport, operation("items"), key, [records[0], too_long])
    assert isinstance(error, InvalidInput)
    assert error.message == "items[1].itemId: length 257 is more than 256"
    unknown = Emulator(Faults(dataset_arns=frozenset({"arn:aws:personalize:r:1:other"})))
    error = _call(unknown, transport, operation("users"), key, _records("users", 1)[1])
    assert isinstance(error, Outage)
    assert error.code == "ResourceNotFoundException"
    busy = Emulator(Faults(datasets_in_use=frozenset({ARN})))
    error = _call(busy, transport, operation("actions"), key, _records("actions", 1)[1])
    assert isinstance(error, Outage)
    assert (error.code, error.status) == ("ResourceInUseException", 409)
