"""The operation object and the transport registry: what a new operation or transport plugs into."""

from __future__ import annotations

import importlib
import typing

import orjson
import pytest
from confluent_kafka import Message

from forwarder.config import PersonalizeConfig
from forwarder.decode import Event, SessionKey
from forwarder.outcome import Envelope
from forwarder.personalize.errors import InvalidInput, Outage, Retryable, classify_response
from forwarder.personalize.operations import PUT_EVENTS
from forwarder.personalize.transport import TRANSPORTS, make_transport


def _event(key: SessionKey, n: int) -> Event:
    wire = {"eventId": f"e{n}", "eventType": "click", "sentAt": 1_700_000_000 + n, "properties": '{"a":"é"}'}
    return Event(key, wire, orjson.dumps(wire), Envelope(Message(topic="t", partition=0, offset=n)), False)


@pytest.mark.parametrize("user_id", ["u1", None])
def test_put_events_body_is_the_json_of_its_boto3_params(user_id: str | None) -> None:
    key = SessionKey("trk", user_id, "s1")
    events = [_event(key, n) for n in range(3)]
    params = PUT_EVENTS.params(key, events)
    assert orjson.loads(PUT_EVENTS.body(key, events)) == params
    assert params[PUT_EVENTS.target] == "trk"
    assert ("userId" in params) == (user_id is not None)


def test_every_registered_transport_has_a_factory() -> None:
    for module in TRANSPORTS.values():
        assert callable(importlib.import_module(module).create)


def test_an_unknown_transport_is_refused_by_name() -> None:
    cfg = PersonalizeConfig.model_validate({"tracking_id": "t", "region": "eu-west-1"})
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        make_transport(cfg.model_copy(update={"transport": "carrier-pigeon"}))


@pytest.mark.parametrize(
    ("status", "header", "payload", "kind", "code", "message"),
    [
        (400, "InvalidInputException:http://x/", b'{"message":"bad"}', InvalidInput, "InvalidInputException", "bad"),
        (400, "", b'{"__type":"com.amazonaws#ThrottlingException","Message":"slow"}', Retryable, "ThrottlingException", "slow"),
        (404, "ResourceNotFoundException", b"not json", Outage, "ResourceNotFoundException", ""),
        (503, "", b"", Retryable, "HTTP503", ""),
    ],
)  # fmt: skip
def test_an_error_response_is_classified_from_its_header_or_body(
    status: int, header: str, payload: bytes, kind: type, code: str, message: str
) -> None:
    error = classify_response(status, header, payload)
    assert type(error) is kind
    assert (error.code, error.message, error.status) == (code, message, status)


def test_the_configuration_offers_exactly_the_registered_transports() -> None:
    annotation = PersonalizeConfig.model_fields["transport"].annotation
    assert set(typing.get_args(annotation)) == set(TRANSPORTS)
