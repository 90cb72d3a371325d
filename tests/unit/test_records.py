"""The record decoders of items, users, actions and action interactions: a valid record within every
limit, or a Problem whose message names the field; tombstones and deletes are reason ``unsupported``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from forwarder.personalize import limits
from forwarder.personalize.catalog import CatalogRecord
from forwarder.personalize.put_action_interactions import ActionInteractionRecord
from forwarder.records.action_interactions import ActionInteractionDecoder, ActionInteractionMapping
from forwarder.records.actions import ActionDecoder
from forwarder.records.catalog import CatalogDecoder, CatalogMapping
from forwarder.records.common import (
    DECODE,
    UNSUPPORTED,
    VALIDATE,
    Problem,
    PropertiesMapping,
    camel_case,
    parse_value,
)
from forwarder.records.items import ItemDecoder
from forwarder.records.users import UserDecoder


def _record(result: object) -> CatalogRecord:
    assert isinstance(result, CatalogRecord), result
    return result


def _problem(result: object) -> Problem:
    assert isinstance(result, Problem), result
    return result


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("number_of_ratings", "numberOfRatings"),
        ("NUMBER_OF_RATINGS", "numberOfRatings"),
        ("number-of-ratings", "numberOfRatings"),
        ("genreL1", "genreL1"),
        ("Genre", "genre"),
        ("PRICE", "price"),
        ("price", "price"),
        ("itemName_v2", "itemNameV2"),
        ("price_EUR", "priceEur"),
    ],
)
def test_camel_case(name: str, expected: str) -> None:
    assert camel_case(name) == expected


def test_item_other_fields_become_camel_case_properties() -> None:
    record = _record(
        ItemDecoder().decode(
            {"itemId": 42, "GENRES": ["Horror", "Action"], "price_eur": 12.5, "in_stock": True, "gone": None}
        )
    )
    assert record.record_id == "42"
    assert record.wire == {
        "itemId": "42",
        "properties": '{"genres":"Horror|Action","priceEur":12.5,"inStock":true}',
    }
    assert record.encoded == orjson.dumps(record.wire)


def test_a_record_without_other_fields_has_no_properties() -> None:
    assert _record(UserDecoder().decode({"userId": "u1"})).wire == {"userId": "u1"}


def test_pick_renames_and_drop_leaves_out() -> None:
    picked = CatalogMapping(
        id_path="product.sku",
        properties=PropertiesMapping(pick={"price": "product.price", "category": "cat"}),
    )
    record = _record(ItemDecoder(picked).decode({"product": {"sku": "S1", "price": 3}, "cat": "c", "x": 1}))
    assert record.wire == {"itemId": "S1", "properties": '{"price":3,"category":"c"}'}
    dropped = CatalogMapping(properties=PropertiesMapping(drop=frozenset({"internal"})))
    record = _record(ActionDecoder(dropped).decode({"actionId": "a", "internal": 1, "value": 100}))
    assert record.wire == {"actionId": "a", "properties": '{"value":100}'}


def test_properties_from_one_field() -> None:
    mapping = CatalogMapping(properties=PropertiesMapping(from_field="attributes", camel_case=False))
    decoder = UserDecoder(mapping)
    assert _record(decoder.decode({"userId": "u", "attributes": {"age_band": "30-39"}})).wire == {
        "userId": "u",
        "properties": '{"age_band":"30-39"}',
    }
    assert (
        _record(decoder.decode({"userId": "u", "attributes": '{"a":"b"}'})).wire["properties"] == '{"a":"b"}'
    )


@pytest.mark.parametrize(
    ("decoder", "limit"),
    [
        (ItemDecoder(), limits.MAX_ITEM_PROPERTIES_LENGTH),
        (UserDecoder(), limits.MAX_USER_PROPERTIES_LENGTH),
        (ActionDecoder(), limits.MAX_ACTION_PROPERTIES_LENGTH),
    ],
)
def test_properties_length_at_the_edge_and_past_it(decoder: CatalogDecoder, limit: int) -> None:
    id_field = decoder._shape.id_field
    # {"d":"..."} is 8 characters around the value
    assert _record(decoder.decode({id_field: "x", "d": "v" * (limit - 8)}))
    problem = _problem(decoder.decode({id_field: "x", "d": "v" * (limit - 7)}))
    assert (problem.reason, problem.message) == (
        VALIDATE,
        f"properties: length {limit + 1} is more than {limit}",
    )


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (None, UNSUPPORTED, "value: is null (a tombstone, a delete)"),
        ([1], DECODE, "value: must be a JSON object, got list"),
        ({"price": 1}, VALIDATE, "itemId: is required"),
        ({"itemId": 1.5}, VALIDATE, "itemId: must be a string, got float"),
        ({"itemId": "x" * 257}, VALIDATE, "itemId: length 257 is more than 256"),
        ({"itemId": "i", "tags": {"a": 1}}, VALIDATE, "properties.tags: must be a string, number"),
        (
            {"itemId": "i", "tags": [[1]]},
            VALIDATE,
            "properties.tags: a list must hold only strings or numbers",
        ),
        ({"itemId": "i", "a_b": 1, "aB": 2}, VALIDATE, "properties.aB: two fields map onto this key"),
    ],
)
def test_item_problems_name_the_field(value: Any, reason: str, message: str) -> None:
    problem = _problem(ItemDecoder().decode(value))
    assert problem.reason == reason
    assert problem.message.startswith(message), problem.message


def test_a_delete_marker_is_unsupported() -> None:
    decoder = ItemDecoder(CatalogMapping(delete_field="deleted"))
    problem = _problem(decoder.decode({"itemId": "i1", "deleted": True}))
    assert (problem.reason, problem.error_class) == (UNSUPPORTED, "Delete")
    assert problem.message.startswith("itemId: 'i1' is marked deleted")
    assert _record(decoder.decode({"itemId": "i1", "deleted": False, "p": 1})).wire == {
        "itemId": "i1",
        "properties": '{"p":1}',
    }


INTERACTION = {
    "actionId": "a1",
    "sessionId": "s1",
    "userId": 7,
    "eventType": "Taken",
    "timestamp": 1_714_566_896,
}


def _interaction(result: object) -> ActionInteractionRecord:
    assert isinstance(result, ActionInteractionRecord), result
    return result


def test_action_interaction_decodes_and_defaults() -> None:
    decoder = ActionInteractionDecoder()
    record = _interaction(
        decoder.decode(
            {
                **INTERACTION,
                "timestamp": 1_714_566_896_500,
                "impression": "a1|a2",
                "properties": {"n_actions": 3},
            },
            event_id="t:0:5",
        )
    )
    assert record.action_id == "a1"
    assert record.wire == {
        "actionId": "a1",
        "sessionId": "s1",
        "userId": "7",
        "eventId": "t:0:5",
        "eventType": "Taken",
        "timestamp": 1_714_566_896.5,
        "impression": ["a1", "a2"],
        "properties": '{"nActions":3}',
    }
    no_time = {k: v for k, v in INTERACTION.items() if k != "timestamp"}
    assert (
        _interaction(decoder.decode(no_time, timestamp=1_700_000_000.25)).wire["timestamp"]
        == 1_700_000_000.25
    )
    iso = _interaction(decoder.decode({**INTERACTION, "timestamp": "2024-05-01T12:34:56Z"}))
    assert iso.wire["timestamp"] == 1_714_566_896


def test_action_interaction_mapping_renames_and_fixes_the_event_type() -> None:
    mapping = ActionInteractionMapping(
        fields={"actionId": "offer.id", "sessionId": "visit"}, event_type="Viewed"
    )
    record = _interaction(
        ActionInteractionDecoder(mapping).decode(
            {"offer": {"id": "o1"}, "visit": "v1", "eventType": "ignored", "timestamp": 1_714_566_896}
        )
    )
    assert record.wire == {
        "actionId": "o1",
        "sessionId": "v1",
        "eventType": "Viewed",
        "timestamp": 1_714_566_896,
    }
    with pytest.raises(ValueError, match=r"fields\.itemId: not a field"):
        ActionInteractionDecoder(ActionInteractionMapping(fields={"itemId": "x"}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actionId": None}, "actionId: is required"),
        ({"sessionId": None}, "sessionId: is required"),
        ({"eventType": None}, "eventType: is required"),
        ({"timestamp": None}, "timestamp: is required"),
        ({"actionId": "a" * 257}, "actionId: length 257 is more than 256"),
        ({"sessionId": "s" * 257}, "sessionId: length 257 is more than 256"),
        ({"eventType": "e" * 257}, "eventType: length 257 is more than 256"),
        ({"recommendationId": "r" * 41}, "recommendationId: length 41 is more than 40"),
        ({"impression": ["a"] * 26}, "impression: 26 action ids is more than 25"),
        ({"impression": []}, "impression: must hold at least 1 action id"),
        ({"properties": {"k": "v" * 1017}}, "properties: length 1025 is more than 1024"),
        ({"properties": {"Timestamp": 1}}, "properties: reserved key(s) not allowed: timestamp"),
        ({"timestamp": "yesterday"}, "timestamp: 'yesterday' is not ISO-8601 nor a number"),
        ({"timestamp": 12}, "timestamp: 12 is neither epoch seconds nor milliseconds"),
    ],
)
def test_action_interaction_problems_name_the_field(change: dict[str, Any], message: str) -> None:
    value = {k: v for k, v in {**INTERACTION, **change}.items() if v is not None}
    problem = _problem(ActionInteractionDecoder().decode(value))
    assert problem.reason == VALIDATE
    assert problem.message.startswith(message), problem.message


def test_action_interaction_limits_at_the_edge_are_accepted() -> None:
    edge = {
        **INTERACTION,
        "actionId": "a" * 256,
        "sessionId": "s" * 256,
        "eventType": "e" * 256,
        "recommendationId": "r" * 40,
        "impression": ["a"] * 25,
        "properties": {"k": "v" * 1016},
    }
    record = _interaction(ActionInteractionDecoder().decode(edge))
    assert len(record.wire["properties"]) == 1024


def test_action_interaction_tombstone_is_unsupported() -> None:
    assert _problem(ActionInteractionDecoder().decode(None)).reason == UNSUPPORTED


@pytest.mark.parametrize(
    ("raw", "reason", "error_class"),
    [
        (None, UNSUPPORTED, "Tombstone"),
        (b"\xff\xfe", DECODE, "NotUtf8"),
        (b"{not json", DECODE, "NotJson"),
        (b"[1, 2]", DECODE, "NotAnObject"),
    ],
)
def test_raw_values_that_are_no_record(raw: bytes | None, reason: str, error_class: str) -> None:
    for decoder in (ItemDecoder(), ActionInteractionDecoder()):
        problem = _problem(decoder.decode(parse_value(raw)))
        assert (problem.reason, problem.error_class) == (reason, error_class)


def test_a_byte_order_mark_is_ignored() -> None:
    assert _record(UserDecoder().decode(parse_value(b'\xef\xbb\xbf{"userId": "u"}'))).wire == {"userId": "u"}
