"""The limits of PutItems, PutUsers, PutActions and PutActionInteractions in forwarder/personalize/limits.py
equal botocore's installed ``personalize-events`` model, so an SDK upgrade that changes one fails here; and
each check accepts a value at its limit and refuses one past it, naming the field."""

from __future__ import annotations

from typing import Any

import botocore.loaders
import pytest

from forwarder.personalize import limits

MODEL: dict[str, Any] = botocore.loaders.create_loader().load_service_model("personalize-events", "service-2")
SHAPES: dict[str, Any] = MODEL["shapes"]


def _member(structure: str, member: str) -> dict[str, Any]:
    shape: dict[str, Any] = SHAPES[SHAPES[structure]["members"][member]["shape"]]
    return shape


@pytest.mark.parametrize(
    ("operation", "path", "target", "list_field"),
    [
        ("PutItems", "/items", "datasetArn", "items"),
        ("PutUsers", "/users", "datasetArn", "users"),
        ("PutActions", "/actions", "datasetArn", "actions"),
        ("PutActionInteractions", "/action-interactions", "trackingId", "actionInteractions"),
    ],
)
def test_request_shape_and_list_size_match_the_model(
    operation: str, path: str, target: str, list_field: str
) -> None:
    op = MODEL["operations"][operation]
    assert op["http"]["requestUri"] == path
    request = op["input"]["shape"]
    assert set(SHAPES[request]["required"]) == {target, list_field}
    records = _member(request, list_field)
    assert (records["min"], records["max"]) == (1, limits.MAX_RECORDS_PER_CALL)
    if target == "datasetArn":
        arn = _member(request, "datasetArn")
        assert (arn["max"], arn["pattern"]) == (limits.MAX_ARN_LENGTH, limits.DATASET_ARN_PATTERN)


@pytest.mark.parametrize(
    ("structure", "shape"), [("Item", limits.ITEM), ("User", limits.USER), ("Action", limits.ACTION)]
)
def test_catalog_records_match_the_model(structure: str, shape: limits.RecordShape) -> None:
    assert set(SHAPES[structure]["members"]) == {shape.id_field, "properties"}
    assert SHAPES[structure]["required"] == [shape.id_field]
    record_id = _member(structure, shape.id_field)
    assert (record_id["min"], record_id["max"]) == (1, limits.MAX_ID_LENGTH)
    properties = _member(structure, "properties")
    assert (properties["min"], properties["max"]) == (1, shape.max_properties)


def test_action_interaction_matches_the_model() -> None:
    members = SHAPES["ActionInteraction"]["members"]
    assert set(members) == limits.ACTION_INTERACTION_FIELDS
    assert set(SHAPES["ActionInteraction"]["required"]) == {"actionId", "sessionId", "timestamp", "eventType"}
    for name in ("actionId", "userId", "sessionId", "eventType", "eventId"):
        assert (_member("ActionInteraction", name)["min"], _member("ActionInteraction", name)["max"]) == (
            1,
            limits.MAX_ID_LENGTH,
        )
    assert _member("ActionInteraction", "recommendationId")["max"] == limits.MAX_RECOMMENDATION_ID_LENGTH
    assert (
        _member("ActionInteraction", "properties")["max"] == limits.MAX_ACTION_INTERACTION_PROPERTIES_LENGTH
    )
    impression = _member("ActionInteraction", "impression")
    assert (impression["min"], impression["max"]) == (1, limits.MAX_ACTION_IMPRESSIONS)
    assert SHAPES[impression["member"]["shape"]]["max"] == limits.MAX_ID_LENGTH
    assert _member("ActionInteraction", "timestamp")["type"] == "timestamp"


def test_every_operation_of_the_model_has_a_rate_entry() -> None:
    assert set(limits.CALLS_PER_SECOND) == set(MODEL["operations"])


ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS"


def _properties(length: int) -> str:
    """A JSON object string of exactly ``length`` characters (``length`` >= 8)."""
    return '{"k":"' + "v" * (length - 8) + '"}'


@pytest.mark.parametrize("shape", [limits.ITEM, limits.USER, limits.ACTION])
def test_catalog_request_limits_at_the_edge_and_past_it(shape: limits.RecordShape) -> None:
    def body(records: list[dict[str, Any]], arn: Any = ARN) -> dict[str, Any]:
        return {"datasetArn": arn, shape.list_field: records}

    one = {shape.id_field: "x" * 256, "properties": _properties(shape.max_properties)}
    assert limits.check_catalog_request(shape, body([one] * 10)) is None
    past = {shape.id_field: "x", "properties": _properties(shape.max_properties + 1)}
    assert limits.check_catalog_request(shape, body([past])) == (
        f"{shape.list_field}[0].properties: length {shape.max_properties + 1} is more than {shape.max_properties}"
    )
    assert (
        limits.check_catalog_request(shape, body([one] * 11))
        == f"{shape.list_field}: 11 records is more than 10"
    )
    long_id = {shape.id_field: "x" * 257}
    assert limits.check_catalog_request(shape, body([long_id])) == (
        f"{shape.list_field}[0].{shape.id_field}: length 257 is more than 256"
    )
    assert (
        limits.check_catalog_request(shape, body([{}]))
        == f"{shape.list_field}[0].{shape.id_field}: is required"
    )
    problem = limits.check_catalog_request(shape, body([one], arn="arn:aws:s3:::bucket"))
    assert problem is not None
    assert problem.startswith("datasetArn: ")


def test_dataset_arn_pattern_and_length() -> None:
    assert limits.check_dataset_arn("datasetArn", ARN) is None
    at_edge = "arn:aws:personalize:r:1:" + "d" * (256 - 24)
    assert len(at_edge) == 256
    assert limits.check_dataset_arn("datasetArn", at_edge) is None
    assert limits.check_dataset_arn("datasetArn", at_edge + "d") == "datasetArn: length 257 is more than 256"
    assert limits.check_dataset_arn("datasetArn", None) == "datasetArn: is required"
    assert limits.check_dataset_arn("datasetArn", "arn:AWS:personalize:r:1:x") is not None


INTERACTION = {"actionId": "a1", "sessionId": "s1", "eventType": "Taken", "timestamp": 1_714_566_896}


@pytest.mark.parametrize(
    ("field", "at_edge", "past", "message"),
    [
        ("actionId", "a" * 256, "a" * 257, "length 257 is more than 256"),
        ("sessionId", "s" * 256, "s" * 257, "length 257 is more than 256"),
        ("eventType", "e" * 256, "e" * 257, "length 257 is more than 256"),
        ("userId", "u" * 256, "u" * 257, "length 257 is more than 256"),
        ("eventId", "i" * 256, "i" * 257, "length 257 is more than 256"),
        ("recommendationId", "r" * 40, "r" * 41, "length 41 is more than 40"),
        ("impression", ["a"] * 25, ["a"] * 26, "26 action ids is more than 25"),
        ("properties", _properties(1024), _properties(1025), "length 1025 is more than 1024"),
    ],
)
def test_action_interaction_limits(field: str, at_edge: Any, past: Any, message: str) -> None:
    assert limits.check_action_interaction({**INTERACTION, field: at_edge}, "r") is None
    assert limits.check_action_interaction({**INTERACTION, field: past}, "r") == f"r.{field}: {message}"


@pytest.mark.parametrize("field", ["actionId", "sessionId", "eventType", "timestamp"])
def test_action_interaction_required_fields(field: str) -> None:
    record = {k: v for k, v in INTERACTION.items() if k != field}
    assert limits.check_action_interaction(record, "r") == f"r.{field}: is required"


def test_action_interaction_properties_refuse_reserved_keys() -> None:
    problem = limits.check_action_interaction({**INTERACTION, "properties": '{"userId":"u"}'}, "r")
    assert problem == "r.properties: reserved key(s) not allowed: userId"


def test_action_interactions_request() -> None:
    body = {"trackingId": "t", "actionInteractions": [INTERACTION] * 10}
    assert limits.check_action_interactions_request(body) is None
    assert limits.check_action_interactions_request({**body, "actionInteractions": [INTERACTION] * 11}) == (
        "actionInteractions: 11 records is more than 10"
    )
    assert limits.check_action_interactions_request({"actionInteractions": [INTERACTION]}) == (
        "trackingId: is required"
    )
