"""PutItems, PutUsers, PutActions and PutActionInteractions at the emulator, driven by a stock boto3 client:
each limit accepted at its edge and refused one past it with ``InvalidInputException`` naming the field;
the datasetArn allow-list; the faults; the record file and the stats per operation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from tests.harness import EmulatorProcess, signed_post

Start = Callable[..., EmulatorProcess]

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
# (boto3 method, list field, id field, properties limit, API name)
CATALOG = [
    ("put_items", "items", "itemId", 32_000, "PutItems"),
    ("put_users", "users", "userId", 24_000, "PutUsers"),
    ("put_actions", "actions", "actionId", 32_000, "PutActions"),
]
CATALOG_IDS = [c[4] for c in CATALOG]


def properties_of_length(n: int) -> str:
    text = '{"k": "' + "x" * (n - 9) + '"}'
    assert len(text) == n
    return text


def invalid(call: Callable[..., Any], **params: Any) -> str:
    """The message of the InvalidInputException ``call(**params)`` raises."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**params)
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidInputException", error
    message: str = error["Message"]
    return message


@pytest.mark.parametrize(("method", "list_field", "id_field", "limit", "name"), CATALOG, ids=CATALOG_IDS)
def test_catalog_limits_at_the_edge_and_one_past(
    shared_emulator: EmulatorProcess, method: str, list_field: str, id_field: str, limit: int, name: str
) -> None:
    call = getattr(shared_emulator.client, method)
    edge = {id_field: "x" * 256, "properties": properties_of_length(limit)}
    call(datasetArn=ARN, **{list_field: [edge] * 10})
    assert (
        invalid(call, datasetArn=ARN, **{list_field: [edge] * 11})
        == f"{list_field}: 11 records is more than 10"
    )
    past = {id_field: "x", "properties": properties_of_length(limit + 1)}
    assert invalid(call, datasetArn=ARN, **{list_field: [edge, past]}) == (
        f"{list_field}[1].properties: length {limit + 1} is more than {limit}"
    )
    assert invalid(call, datasetArn=ARN, **{list_field: [{id_field: "x" * 257}]}) == (
        f"{list_field}[0].{id_field}: length 257 is more than 256"
    )
    assert invalid(call, datasetArn=ARN, **{list_field: [{id_field: "i", "properties": "[1]"}]}) == (
        f"{list_field}[0].properties: must be a JSON object, got list"
    )
    long_arn = "arn:aws:personalize:r:1:" + "d" * (256 - 24)
    call(datasetArn=long_arn, **{list_field: [{id_field: "i"}]})
    assert invalid(call, datasetArn=long_arn + "d", **{list_field: [{id_field: "i"}]}) == (
        "datasetArn: length 257 is more than 256"
    )
    assert invalid(call, datasetArn="arn:aws:s3:::bucket", **{list_field: [{id_field: "i"}]}).startswith(
        "datasetArn: 'arn:aws:s3:::bucket' is not a Personalize ARN"
    )


INTERACTION = {"actionId": "a-1", "sessionId": "s-1", "eventType": "Taken", "timestamp": 1714566896}


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
        (
            "properties",
            properties_of_length(1024),
            properties_of_length(1025),
            "length 1025 is more than 1024",
        ),
    ],
)
def test_action_interaction_limits_at_the_edge_and_one_past(
    shared_emulator: EmulatorProcess, field: str, at_edge: Any, past: Any, message: str
) -> None:
    call = shared_emulator.client.put_action_interactions
    call(trackingId="trk", actionInteractions=[{**INTERACTION, field: at_edge}])
    records = [INTERACTION, {**INTERACTION, field: past}]
    assert (
        invalid(call, trackingId="trk", actionInteractions=records)
        == f"actionInteractions[1].{field}: {message}"
    )


def test_action_interactions_per_call_and_required_timestamp(shared_emulator: EmulatorProcess) -> None:
    call = shared_emulator.client.put_action_interactions
    call(trackingId="trk", actionInteractions=[INTERACTION] * 10)
    assert invalid(call, trackingId="trk", actionInteractions=[INTERACTION] * 11) == (
        "actionInteractions: 11 records is more than 10"
    )
    # botocore refuses a missing timestamp itself; the service's answer is seen on a raw signed call.
    untimed = {k: v for k, v in INTERACTION.items() if k != "timestamp"}
    body = json.dumps({"trackingId": "trk", "actionInteractions": [untimed]}).encode()
    response = signed_post(f"{shared_emulator.url}/action-interactions", body)
    assert response.status == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert response.json() == {"message": "actionInteractions[0].timestamp: is required"}
    reserved = {**INTERACTION, "properties": '{"sessionId": "x"}'}
    assert invalid(call, trackingId="trk", actionInteractions=[reserved]) == (
        "actionInteractions[0].properties: reserved key(s) not allowed: sessionId"
    )


def test_dataset_allow_list_faults_record_and_stats(emulators: Start) -> None:
    emulator = emulators("--dataset-arn", ARN, "--tracking-id", "trk")
    client = emulator.client
    other = ARN.replace("ITEMS", "USERS")
    client.put_items(datasetArn=ARN, items=[{"itemId": "i-1", "properties": '{"genre": "Horror|Action"}'}])
    with pytest.raises(client.exceptions.ResourceNotFoundException, match=f"Dataset {other} not found"):
        client.put_users(datasetArn=other, users=[{"userId": "u-1"}])
    client.put_users(datasetArn=ARN, users=[{"userId": "u-1"}, {"userId": "u-2"}])
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Tracking ID nope not found"):
        client.put_action_interactions(trackingId="nope", actionInteractions=[INTERACTION])
    client.put_action_interactions(trackingId="trk", actionInteractions=[INTERACTION])
    emulator.set_faults(throttle_rate=1.0)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_actions(datasetArn=ARN, actions=[{"actionId": "a-1"}])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    emulator.set_faults(throttle_rate=0, access_denied=True)
    with pytest.raises(botocore.exceptions.ClientError, match="personalize:PutActions"):
        client.put_actions(datasetArn=ARN, actions=[{"actionId": "a-1"}])
    emulator.set_faults(access_denied=False, datasets_in_use=[ARN])
    with pytest.raises(client.exceptions.ResourceInUseException, match="in use"):
        client.put_actions(datasetArn=ARN, actions=[{"actionId": "a-1"}])
    emulator.set_faults(datasets_in_use=[])
    client.put_actions(datasetArn=ARN, actions=[{"actionId": "a-1", "properties": '{"value": 100}'}])

    assert [name for name, _ in emulator.recorded()] == [
        "PutItems",
        "PutUsers",
        "PutActionInteractions",
        "PutActions",
    ]
    assert emulator.calls("PutItems") == [
        {"datasetArn": ARN, "items": [{"itemId": "i-1", "properties": '{"genre": "Horror|Action"}'}]}
    ]
    (interactions,) = emulator.calls("PutActionInteractions")
    assert interactions == {"trackingId": "trk", "actionInteractions": [INTERACTION]}
    stats = emulator.stats()
    assert stats["requests"] == 0, "the top level is PutEvents'"
    assert "in_use" not in stats, "the top level keeps PutEvents' fields"
    sections = stats["operations"]
    users = sections["PutUsers"]
    assert (users["requests"], users["accepted_calls"], users["accepted_records"], users["not_found"]) == (
        2,
        1,
        2,
        1,
    )
    actions = sections["PutActions"]
    outcomes = ("requests", "throttled", "access_denied", "in_use", "accepted_calls")
    assert [actions[name] for name in outcomes] == [4, 1, 1, 1, 1]
    assert sections["PutActionInteractions"]["not_found"] == 1
    assert emulator.get("/_emulator/faults").json()["dataset_arns"] == [ARN]


def test_an_operation_quota_from_the_command_line_throttles_that_operation_only(emulators: Start) -> None:
    emulator = emulators("--operation-quota-rps", "PutItems=1")
    client = emulator.client
    client.put_items(datasetArn=ARN, items=[{"itemId": "i-1"}])
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_items(datasetArn=ARN, items=[{"itemId": "i-1"}])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    for _ in range(3):
        client.put_users(datasetArn=ARN, users=[{"userId": "u-1"}])
    assert emulator.get("/_emulator/faults").json()["operation_quota_rps"] == {"PutItems": 1.0}
    assert emulator.stats()["operations"]["PutItems"]["quota_throttled"] == 1


def test_a_bad_operation_quota_is_a_usage_error(emulators: Start) -> None:
    with pytest.raises(AssertionError, match="emulator did not start"):
        emulators("--operation-quota-rps", "PutDeletes=1")
