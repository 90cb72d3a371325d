"""The ``routes`` section: each route valid for its operation, the events route unchanged, routes apart."""

from __future__ import annotations

from typing import Any

import pytest

from forwarder.config import ConfigError, parse_config

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
MINIMAL: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "k:9092", "topics": ["t"]},
    "personalize": {"tracking_id": "trk"},
    "dead_letter": {"topic": "dlq"},
}


def _with(*routes: dict[str, Any]) -> dict[str, Any]:
    return {**MINIMAL, "routes": list(routes)}


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(data, environ={})
    return str(err.value)


def test_a_file_without_routes_is_the_events_route_as_before() -> None:
    cfg = parse_config(MINIMAL, environ={})
    assert cfg.routes == []
    assert cfg.all_topics == ["t"]


def test_each_operation_with_its_target() -> None:
    cfg = parse_config(
        _with(
            {"operation": "items", "topics": "items, items2", "dataset_arn": ARN},
            {"operation": "users", "topics": ["users"], "dataset_arn": ARN.replace("ITEMS", "USERS")},
            {"operation": "actions", "topics": ["actions"], "dataset_arn": ARN.replace("ITEMS", "ACTIONS")},
            {"operation": "action_interactions", "topics": ["ai"], "tracking_id": "trk2"},
        ),
        environ={},
    )
    assert [r.name for r in cfg.routes] == ["items", "users", "actions", "action_interactions"]
    assert cfg.all_topics == ["t", "items", "items2", "users", "actions", "ai"]
    assert cfg.routes[0].target == ARN
    assert cfg.routes[3].target == "trk2"
    # The documented quota when none is set; none where none is documented.
    assert cfg.routes[0].calls_per_second == 10.0
    assert cfg.routes[2].calls_per_second is None


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"operation": "items", "topics": ["i"]}, "dataset_arn: is required for operation items"),
        ({"operation": "items", "topics": ["i"], "dataset_arn": "not-an-arn"}, "is not a Personalize ARN"),
        (
            {"operation": "items", "topics": ["i"], "dataset_arn": "arn:aws:personalize:x:y:" + "z" * 300},
            "length",
        ),
        (
            {"operation": "items", "topics": ["i"], "dataset_arn": ARN, "tracking_id": "x"},
            "tracking_id: not used",
        ),
        ({"operation": "action_interactions", "topics": ["i"]}, "tracking_id: is required"),
        (
            {"operation": "action_interactions", "topics": ["i"], "tracking_id": "x", "dataset_arn": ARN},
            "dataset_arn",
        ),
        ({"operation": "events", "topics": ["i"], "tracking_id": "x"}, "operation"),
        ({"operation": "items", "topics": [], "dataset_arn": ARN}, "topics"),
        (
            {"operation": "items", "topics": ["i"], "dataset_arn": ARN, "mapping": {"event_type": "Taken"}},
            "mapping.event_type: not a mapping key of operation items",
        ),
        (
            {
                "operation": "action_interactions",
                "topics": ["i"],
                "tracking_id": "x",
                "mapping": {"pick": {"a": "b"}},
            },
            "mapping.pick: not a mapping key of operation action_interactions",
        ),
        ({"operation": "items", "topics": ["i"], "dataset_arn": ARN, "max_records": 11}, "max_records"),
        ({"operation": "items", "topics": ["i"], "dataset_arn": ARN, "surprise": 1}, "surprise"),
    ],
)
def test_a_bad_route_is_named(route: dict[str, Any], expected: str) -> None:
    message = _problems(_with(route))
    assert "routes[0]" in message
    assert expected in message


def test_routes_keep_apart() -> None:
    items = {"operation": "items", "topics": ["i"], "dataset_arn": ARN}
    assert "t is also read by route events" in _problems(_with({**items, "topics": ["t"]}))
    assert "is the dead-letter topic" in _problems(_with({**items, "topics": ["dlq"]}))
    assert "i is also read by route items" in _problems(_with(items, {**items, "name": "more"}))
    assert "'items' is taken" in _problems(_with(items, {**items, "topics": ["j"]}))
    assert "'events' is taken" in _problems(_with({**items, "name": "events"}))


def test_a_route_topic_cannot_be_given_a_registry_format() -> None:
    data = _with({"operation": "items", "topics": ["i"], "dataset_arn": ARN})
    data["input"] = {"format": {"i": "avro", "t": "avro"}, "schema_registry": {"url": "http://127.0.0.1:1"}}
    assert "input.format: i is read by route items, whose records are JSON" in _problems(data)
    data["input"] = {"format": {"t": "avro"}, "schema_registry": {"url": "http://127.0.0.1:1"}}
    assert parse_config(data, environ={}).input.format_of("t") == "avro"
