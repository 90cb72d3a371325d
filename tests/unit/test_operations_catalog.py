"""PutItems, PutUsers, PutActions and PutActionInteractions as :class:`Operation` objects: each body is the
JSON of its boto3 params (which the fast transport posts in place of boto3's), and the registry finds each."""

from __future__ import annotations

import orjson
import pytest

from forwarder.personalize.catalog import CatalogRecord
from forwarder.personalize.errors import Outage, classify_response
from forwarder.personalize.operations import OPERATIONS, PUT_EVENTS, Operation, operation
from forwarder.personalize.put_action_interactions import PUT_ACTION_INTERACTIONS, ActionInteractionRecord
from forwarder.personalize.put_actions import PUT_ACTIONS
from forwarder.personalize.put_items import PUT_ITEMS
from forwarder.personalize.put_users import PUT_USERS

ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS"


def _catalog(id_field: str, n: int) -> CatalogRecord:
    wire = {id_field: f"id-{n}", "properties": orjson.dumps({"genre": "é|Action", "price": n}).decode()}
    return CatalogRecord(f"id-{n}", wire, orjson.dumps(wire))


@pytest.mark.parametrize(
    ("op", "path", "method", "id_field", "list_field"),
    [
        (PUT_ITEMS, "/items", "put_items", "itemId", "items"),
        (PUT_USERS, "/users", "put_users", "userId", "users"),
        (PUT_ACTIONS, "/actions", "put_actions", "actionId", "actions"),
    ],
)
def test_catalog_body_is_the_json_of_its_boto3_params(
    op: Operation[str, CatalogRecord], path: str, method: str, id_field: str, list_field: str
) -> None:
    records = [_catalog(id_field, n) for n in range(10)]
    params = op.params(ARN, records)
    assert orjson.loads(op.body(ARN, records)) == params
    assert params == {"datasetArn": ARN, list_field: [r.wire for r in records]}
    assert (op.path, op.method, op.target) == (path, method, "datasetArn")


def test_action_interactions_body_is_the_json_of_its_boto3_params() -> None:
    records = []
    for n in range(3):
        wire = {
            "actionId": f"a{n}",
            "sessionId": f"s{n}",
            "eventType": "Taken",
            "timestamp": 1_714_566_896 + n,
        }
        if n:
            wire["userId"] = f"u{n}"  # sessions and users mix in one call
        records.append(ActionInteractionRecord(f"a{n}", wire, orjson.dumps(wire)))
    params = PUT_ACTION_INTERACTIONS.params("trk", records)
    assert orjson.loads(PUT_ACTION_INTERACTIONS.body("trk", records)) == params
    assert params == {"trackingId": "trk", "actionInteractions": [r.wire for r in records]}
    assert PUT_ACTION_INTERACTIONS.target == "trackingId"


def test_the_registry_finds_every_operation_by_its_route_name() -> None:
    found = {name: operation(name) for name in OPERATIONS}
    assert found == {
        "events": PUT_EVENTS,
        "items": PUT_ITEMS,
        "users": PUT_USERS,
        "actions": PUT_ACTIONS,
        "action_interactions": PUT_ACTION_INTERACTIONS,
    }
    assert sorted(op.name for op in found.values()) == sorted(
        ["PutEvents", "PutItems", "PutUsers", "PutActions", "PutActionInteractions"]
    )
    with pytest.raises(ValueError, match="unknown operation 'deletes'"):
        operation("deletes")


def test_a_dataset_in_use_is_an_outage_not_bad_input() -> None:
    # PutItems, PutUsers, PutActions and PutActionInteractions answer 409 ResourceInUseException while
    # their dataset is busy: not the records' fault, so nothing may be dead-lettered for it.
    error = classify_response(
        409, "ResourceInUseException", b'{"message":"The specified resource is in use."}'
    )
    assert type(error) is Outage
    assert error.code == "ResourceInUseException"
