"""Property: whatever bytes arrive, the decoder never raises; it returns either an event that passes every
rule of the service, or a rejection at stage decode/validate with a reason."""

from __future__ import annotations

import json
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.config import MappingConfig
from forwarder.decode import UNEXPECTED, Decoder, Event
from forwarder.outcome import Envelope, Reason
from forwarder.personalize import limits
from tests.support import request_of

DECODER = Decoder(MappingConfig(), "trk")
FIELDS = [
    "userId",
    "sessionId",
    "eventType",
    "itemId",
    "eventId",
    "eventValue",
    "sentAt",
    "properties",
    "impression",
    "recommendationId",
    "metricAttribution",
    "trackingId",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.sampled_from(
        ["", "|", "a|b", "2024-05-01T12:34:56Z", "1714566896", '{"a":1}', "[]", "\U0001f600" * 257]
    ),
    st.sampled_from([1714566896, 1714566896789, -1, 253402300800, 10**20]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=20), inner, max_size=6),
    max_leaves=40,
)
events = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS))


def _check(value: bytes | None) -> None:
    message = Message(
        topic="t", partition=3, offset=9, value=value, timestamp=(TIMESTAMP_CREATE_TIME, 1714566896000)
    )
    result = DECODER.decode(Envelope(message))
    if isinstance(result, Event):
        assert limits.check_request(request_of(result)) is None
        assert orjson.loads(result.encoded) == result.wire
    else:
        assert isinstance(result, Reason)
        assert result.stage in ("decode", "validate")
        assert result.error_class != UNEXPECTED, result.message  # caught by a check, not by the safety net
        assert result.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_decoder(value: bytes) -> None:
    _check(value)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_random_events_become_valid_events_or_reasons(event: dict[str, Any]) -> None:
    _check(json.dumps(event).encode())


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_random_json_documents(document: Any) -> None:
    _check(json.dumps(document).encode())
