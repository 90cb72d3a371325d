"""Decode: every input shape the issue lists becomes a valid event, or a rejection naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from forwarder.config import MappingConfig, MappingFields
from forwarder.decode import Decoder, Event, SessionKey, derive_event_id
from forwarder.outcome import Envelope, Reason
from forwarder.personalize import limits

BASE = {"sessionId": "s1", "userId": "u1", "eventType": "click", "sentAt": 1714566896}


def _msg(value: Any, offset: int = 7, ts: int = 1714566896789) -> Message:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return Message(
        topic="events", partition=2, offset=offset, value=raw, timestamp=(TIMESTAMP_CREATE_TIME, ts)
    )


def _decode(value: Any, mapping: MappingConfig | None = None, **kw: Any) -> Event | Reason:
    return Decoder(mapping or MappingConfig(), "default-tracker").decode(Envelope(_msg(value, **kw)))


def _ok(value: Any, mapping: MappingConfig | None = None, **kw: Any) -> Event:
    result = _decode(value, mapping, **kw)
    assert isinstance(result, Event), result
    assert limits.check_event(result.wire) is None
    return result


def _bad(value: Any, stage: str, field: str, mapping: MappingConfig | None = None) -> Reason:
    result = _decode(value, mapping)
    assert isinstance(result, Reason), f"accepted: {result}"
    assert result.stage == stage
    assert result.message.startswith(field), result.message
    return result


def test_a_full_event_keeps_every_field() -> None:
    ev = _ok(
        {
            **BASE,
            "itemId": "i1",
            "eventId": "e1",
            "eventValue": 1.5,
            "properties": {"a": "12", "discount": True},
            "impression": ["i1", "i2"],
            "recommendationId": "RID-abc",
            "metricAttribution": {"eventAttributionSource": "SourceA"},
            "trackingId": "other-tracker",
            "somethingElse": "ignored",
        }
    )
    assert ev.key == SessionKey("other-tracker", "u1", "s1")
    assert ev.wire == {
        "eventId": "e1",
        "eventType": "click",
        "sentAt": 1714566896,
        "itemId": "i1",
        "eventValue": 1.5,
        "properties": '{"a":"12","discount":true}',
        "impression": ["i1", "i2"],
        "recommendationId": "RID-abc",
        "metricAttribution": {"eventAttributionSource": "SourceA"},
    }
    assert ev.both_impression_kinds
    assert orjson.loads(ev.encoded) == ev.wire


def test_defaults_tracking_id_derived_event_id_and_kafka_timestamp() -> None:
    ev = _ok({"sessionId": "s", "eventType": "view"}, offset=42, ts=1714566896789)
    assert ev.key == SessionKey("default-tracker", None, "s")
    assert ev.wire["eventId"] == "events:2:42"
    assert ev.wire["sentAt"] == pytest.approx(1714566896.789)
    assert not ev.both_impression_kinds
    assert _ok({"sessionId": "s", "eventType": "view"}, offset=42).wire["eventId"] == "events:2:42", "stable"


def test_derived_event_id_fits_the_limit_for_long_topic_names() -> None:
    long = derive_event_id("t" * 249, 2147483647, 2**62)
    assert 1 <= len(long) <= 256
    assert long == derive_event_id("t" * 249, 2147483647, 2**62)


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [
        (1714566896, 1714566896),
        (1714566896.25, 1714566896.25),
        (1714566896789, 1714566896.789),
        (1714566896000, 1714566896),
        ("2024-05-01T12:34:56Z", 1714566896),
        ("2024-05-01T12:34:56.5+00:00", 1714566896.5),
        ("2024-05-01T14:34:56+02:00", 1714566896),
        ("2024-05-01T12:34:56", 1714566896),
    ],
)
def test_sent_at_forms(sent_at: Any, expected: float) -> None:
    assert _ok({**BASE, "sentAt": sent_at}).wire["sentAt"] == pytest.approx(expected)


@pytest.mark.parametrize("sent_at", [-5, 0, 253402300800, "10000-01-01T00:00:00Z", "yesterday", True, [1]])
def test_bad_sent_at_is_rejected_naming_the_field(sent_at: Any) -> None:
    _bad({**BASE, "sentAt": sent_at}, "validate", "sentAt")


def test_explicit_sent_at_units_accept_any_valid_time() -> None:
    seconds = MappingConfig(sent_at_unit="s")
    assert _ok({**BASE, "sentAt": 86400}, seconds).wire["sentAt"] == 86400
    millis = MappingConfig(sent_at_unit="ms")
    assert _ok({**BASE, "sentAt": 86400500}, millis).wire["sentAt"] == pytest.approx(86400.5)
    _bad({**BASE, "sentAt": 253402300800}, "validate", "sentAt", seconds)


def test_impression_as_pipe_string_and_numeric_ids() -> None:
    assert _ok({**BASE, "impression": "a|b|c"}).wire["impression"] == ["a", "b", "c"]
    assert _ok({**BASE, "impression": [1, 2]}).wire["impression"] == ["1", "2"]
    assert _ok({**BASE, "userId": 12345, "sessionId": 99}).key == SessionKey("default-tracker", "12345", "99")


def test_properties_as_json_string_are_sent_as_written() -> None:
    assert _ok({**BASE, "properties": '{"a": "12"}'}).wire["properties"] == '{"a": "12"}'


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, "Tombstone"), (b"\xff\xfe\x00", "NotUtf8"), (b'{"sessionId": "s"', "NotJson"), (b"", "NotJson")],
)
def test_undecodable_values(value: Any, kind: str) -> None:
    result = _bad(value, "decode", "value")
    assert result.error_class == kind


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None, True])
def test_json_that_is_not_an_object(value: Any) -> None:
    raw = orjson.dumps(value)
    _bad(raw, "decode", "value")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"sessionId": None}, "sessionId"),
        ({"sessionId": ""}, "sessionId"),
        ({"sessionId": "s" * 257}, "sessionId"),
        ({"eventType": None}, "eventType"),
        ({"eventType": ""}, "eventType"),
        ({"userId": ""}, "userId"),
        ({"userId": 1.5}, "userId"),
        ({"userId": "u" * 257}, "userId"),
        ({"trackingId": "t" * 257}, "trackingId"),
        ({"itemId": "i" * 257}, "itemId"),
        ({"eventId": ""}, "eventId"),
        ({"impression": ["x"] * 26}, "impression"),
        ({"impression": []}, "impression"),
        ({"impression": "a||b"}, "impression[1]"),
        ({"impression": ["i" * 257]}, "impression[0]"),
        ({"impression": ["x" * 100] * 10}, "impression"),
        ({"impression": {"a": 1}}, "impression"),
        ({"recommendationId": "r" * 41}, "recommendationId"),
        ({"properties": {"k": "v" * 1020}}, "properties"),
        ({"properties": "{not json"}, "properties"),
        ({"properties": "[1, 2]"}, "properties"),
        ({"properties": {"UserId": "x"}}, "properties"),
        ({"properties": {"timestamp": 1}}, "properties"),
        ({"properties": 5}, "properties"),
        ({"eventValue": "1.5"}, "eventValue"),
        ({"metricAttribution": {"eventAttributionSource": " "}}, "metricAttribution.eventAttributionSource"),
        ({"metricAttribution": {"eventAttributionSource": "é"}}, "metricAttribution.eventAttributionSource"),
        ({"metricAttribution": {"eventAttributionSource": "x" * 1025}}, "metricAttribution"),
    ],
)
def test_invalid_fields_are_rejected_naming_the_field(patch: dict[str, Any], field: str) -> None:
    _bad({**BASE, **patch}, "validate", field)


def test_edges_are_accepted() -> None:
    ev = _ok(
        {
            **BASE,
            "sessionId": "s" * 256,
            "userId": "😀" * 256,  # counted in code points, as the service counts
            "impression": ["i" * 39] * 25,
            "recommendationId": "r" * 40,
            "properties": "{" + '"k":"' + "v" * 1016 + '"}',
            "metricAttribution": {"eventAttributionSource": "x" * 1024},
        }
    )
    assert len(ev.wire["properties"]) == 1024


def test_an_event_over_10_kb_is_rejected() -> None:
    # Each field within its own limit, but four-byte characters make the whole event over 10 KB.
    wide = "😀"
    fields = {
        **BASE,
        "eventType": wide * 256,
        "itemId": wide * 256,
        "eventId": wide * 256,
        "properties": {"k": wide * 1000},
        "impression": [wide * 39] * 25,
    }
    result = _bad(fields, "validate", "event")
    assert "10240 bytes" in result.message
    fields["impression"] = ["i"]
    assert isinstance(_decode(fields), Event)


def test_a_1_mb_message_is_rejected_or_accepted_on_its_fields() -> None:
    assert isinstance(_decode({**BASE, "blob": "x" * 1_000_000}), Event), "unknown fields are ignored"
    _bad({**BASE, "properties": "x" * 1_000_000}, "validate", "properties")


def test_mapping_renames_nested_fields_and_sets_a_constant_event_type() -> None:
    mapping = MappingConfig(
        fields=MappingFields(userId="user_id", sessionId="context.session.id", itemId="item.sku"),
        event_type="purchase",
    )
    ev = _ok({"user_id": "u9", "context": {"session": {"id": "sess"}}, "item": {"sku": "SKU1"}}, mapping)
    assert ev.key == SessionKey("default-tracker", "u9", "sess")
    assert ev.wire["eventType"] == "purchase"
    assert ev.wire["itemId"] == "SKU1"
    _bad({"user_id": "u9", "context": {"session": "flat"}}, "validate", "context.session", mapping)
    _bad({"user_id": "u9", "context": {}}, "validate", "sessionId", mapping)


@pytest.mark.parametrize("depth", [254, 255, 300, 1000])
def test_properties_nested_past_what_json_encoders_take_are_rejected_not_raised(depth: int) -> None:
    # orjson parses a document 1,024 levels deep but encodes at most 254: the gap once stopped the daemon.
    value = (
        b'{"sessionId":"s","eventType":"click","properties":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1)
    )
    result = _bad(value, "validate", "properties")
    assert result.error_class == "InvalidField"
