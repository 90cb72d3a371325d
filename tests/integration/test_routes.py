"""Routes end to end, against the real broker and the emulator: one daemon, one group, the events route
and a route of each other operation. Every record is delivered once, in calls of up to 10, each id's
updates in Kafka order through throttling and 5xx retries; every limit violation, tombstone and delete
is dead-lettered with its field and its operation; and a throttled items route does not slow events."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pipeline import Pipeline, pipeline, wait_committed
from tests.support import (
    EmulatorProcess,
    create_topic,
    fully_committed,
    headers_dict,
    produce,
    scrape,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/{}"
API = {
    "items": "PutItems",
    "users": "PutUsers",
    "actions": "PutActions",
    "action_interactions": "PutActionInteractions",
}
LIST = {"items": "items", "users": "users", "actions": "actions", "action_interactions": "actionInteractions"}
ID = {"items": "itemId", "users": "userId", "actions": "actionId", "action_interactions": "sessionId"}


def _catalog(operation: str, n: int, ids: int) -> list[tuple[bytes, bytes]]:
    """``n`` updates over ``ids`` ids, keyed by id; each carries its sequence number for its id."""
    seq: dict[str, int] = defaultdict(int)
    out = []
    for i in range(n):
        record_id = f"{operation}-{i % ids}"
        value = {ID[operation]: record_id, "version": seq[record_id], "n": i, "GENRE_NAME": ["a", "b"]}
        seq[record_id] += 1
        out.append((record_id.encode(), json.dumps(value).encode()))
    return out


def _events(n: int, sessions: int) -> list[tuple[bytes, bytes]]:
    """PutEvents input of ``sessions`` sessions, keyed by session."""
    out = []
    for i in range(n):
        event = {
            "sessionId": f"s{i % sessions}",
            "eventType": "click",
            "eventId": f"e{i}",
            "sentAt": 1714566896,
        }
        out.append((f"s{i % sessions}".encode(), json.dumps(event).encode()))
    return out


def _interactions(n: int, sessions: int) -> list[tuple[bytes, bytes]]:
    seq: dict[str, int] = defaultdict(int)
    out = []
    for i in range(n):
        session = f"s-{i % sessions}"
        value = {
            "actionId": f"action-{i % 7}",
            "sessionId": session,
            "userId": f"u-{i % sessions}",
            "eventType": "Viewed",
            "timestamp": 1714566896 + i,
            "properties": {"version": seq[session]},
        }
        seq[session] += 1
        out.append((session.encode(), json.dumps(value).encode()))
    return out


def _interaction(**fields: Any) -> bytes:
    """An action interaction with ``fields`` on top; a field given as None is left out."""
    value = {"actionId": "a", "sessionId": "s", "eventType": "Viewed", "timestamp": 1714566896, **fields}
    return json.dumps({k: v for k, v in value.items() if v is not None}).encode()


BAD: dict[str, list[tuple[bytes | None, bytes | None, str, str]]] = {
    # (key, value, stage, the start of the message: the field)
    "items": [
        (b"big", json.dumps({"itemId": "big", "text": "x" * 32_001}).encode(), "validate", "properties"),
        (b"noid", json.dumps({"title": "no id"}).encode(), "validate", "itemId"),
        (b"gone", None, "unsupported", "value"),
        (b"del", json.dumps({"itemId": "del", "deleted": True}).encode(), "unsupported", "itemId"),
        (b"junk", b"not json", "decode", "value"),
    ],
    "users": [
        (b"big", json.dumps({"userId": "big", "text": "x" * 24_001}).encode(), "validate", "properties")
    ],
    "actions": [(b"long", json.dumps({"actionId": "a" * 257}).encode(), "validate", "actionId")],
    "action_interactions": [
        (b"s", _interaction(actionId=None), "validate", "actionId"),
        (b"s", _interaction(impression=[str(i) for i in range(26)]), "validate", "impression"),
        (b"s", _interaction(recommendationId="r" * 41), "validate", "recommendationId"),
        (b"s", _interaction(properties={"p": "x" * 1100}), "validate", "properties"),
    ],
}


def _routes(topics: dict[str, str], **extra: Any) -> list[dict[str, Any]]:
    routes = []
    for operation, topic in topics.items():
        route: dict[str, Any] = {"operation": operation, "topics": [topic], "linger_ms": 100, **extra}
        if operation == "action_interactions":
            route["tracking_id"] = "tracking-actions"
        else:
            route["dataset_arn"] = ARN.format(operation.upper())
        if operation == "items":
            route["mapping"] = {"delete_field": "deleted"}
        routes.append(route)
    return routes


def _emulator_args(*more: str) -> list[str]:
    args = ["--tracking-id", "tracking-test", "--tracking-id", "tracking-actions"]
    for operation in ("items", "users", "actions"):
        args += ["--dataset-arn", ARN.format(operation.upper())]
    return [*args, *more]


def _pipeline(
    bootstrap: str,
    tmp_path: Path,
    route_topics: dict[str, str],
    emulator_args: tuple[str, ...],
    *,
    retry: dict[str, Any] | None = None,
    events_partitions: int = 2,
    metrics: bool = True,
) -> Pipeline:
    """The events topic (``events_partitions``), its dead-letter topic, an emulator knowing every route's
    target (and ``emulator_args``), and a configuration routing ``route_topics`` with ``retry`` (and a
    metrics port unless ``metrics`` is false)."""
    extra: dict[str, Any] = {"routes": _routes(route_topics)}
    if retry is not None:
        extra["retry"] = retry
    return pipeline(
        bootstrap,
        tmp_path,
        "routes-events",
        partitions=events_partitions,
        emulator_args=tuple(_emulator_args(*emulator_args)),
        metrics=metrics,
        extra=extra,
    )


def _items_pipeline(
    bootstrap: str, tmp_path: Path, emulator_args: tuple[str, ...], **kwargs: Any
) -> tuple[Pipeline, str]:
    """An items topic of two partitions, and :func:`_pipeline` routing it (``kwargs`` are its own)."""
    items_topic = create_topic(bootstrap, unique("routes-items"), partitions=2)
    return _pipeline(bootstrap, tmp_path, {"items": items_topic}, emulator_args, **kwargs), items_topic


def _items_accepted(emulator: EmulatorProcess) -> int:
    """The records PutItems accepted so far."""
    accepted: int = emulator.stats()["operations"]["PutItems"]["accepted_records"]
    return accepted


def _versions(calls: list[dict[str, Any]], operation: str) -> dict[str, list[int]]:
    """Each id's versions in the order the service accepted them."""
    seen: dict[str, list[int]] = defaultdict(list)
    for call in calls:
        for record in call[LIST[operation]]:
            properties = json.loads(record["properties"])
            seen[record[ID[operation]]].append(properties["version"])
    return seen


def test_every_operation_delivered_in_batches_in_id_order_and_bad_records_dead_lettered(
    bootstrap: str, tmp_path: Path
) -> None:
    topics = {op: create_topic(bootstrap, unique(f"routes-{op}"), partitions=3) for op in API}
    # Throttling and 5xx on a third of the calls: per-id order must hold through the retries.
    p = _pipeline(
        bootstrap,
        tmp_path,
        topics,
        ("--throttle-rate", "0.2", "--error-rate", "0.1", "--seed", "5"),
        retry={"max_attempts": 30},
    )
    emulator, events_topic, port = p.emulator, p.topic, p.port
    assert port is not None
    good = {op: _catalog(op, 300, 23) for op in ("items", "users", "actions")}
    good["action_interactions"] = _interactions(300, 19)
    for op, records in good.items():
        produce(bootstrap, topics[op], [*records, *((k, v) for k, v, _, _ in BAD[op])])
    events = _events(200, 9)
    p.produce(events)

    bad_total = sum(len(v) for v in BAD.values())
    with p.run() as replica:

        def delivered() -> bool:
            ops = emulator.stats()["operations"]
            return emulator.stats()["accepted_events"] >= len(events) and all(
                ops[API[op]]["accepted_records"] >= 300 for op in API
            )

        wait_for(delivered, 120, what="every record of every route accepted")
        for topic in [events_topic, *topics.values()]:
            wait_committed(bootstrap, p.group, topic, 30)
        metrics = scrape(port)
        ops = emulator.stats()["operations"]
        for op in API:
            sent = metrics[f'forwarder_route_records_sent_total{{operation="{op}"}}']
            assert sent == ops[API[op]]["accepted_records"] == 300, op
        assert replica.stop() == 0, replica.log_text()[-3000:]

    for op, records in good.items():
        calls = emulator.calls(API[op])
        assert all(1 <= len(call[LIST[op]]) <= 10 for call in calls), "calls of 1 to 10 records"
        assert max(len(call[LIST[op]]) for call in calls) == 10, "full batches where the records allow"
        target = "trackingId" if op == "action_interactions" else "datasetArn"
        assert {call[target] for call in calls} == {
            "tracking-actions" if op == "action_interactions" else ARN.format(op.upper())
        }
        produced: dict[str, list[int]] = defaultdict(list)
        for _, raw in records:
            value = json.loads(raw)
            produced[value[ID[op]]].append(value.get("properties", value)["version"])
        assert _versions(calls, op) == produced, f"{op}: each id's updates once each, in Kafka order"
    items = emulator.calls("PutItems")[0]["items"][0]
    assert json.loads(items["properties"])["genreName"] == "a|b", "camelCase keys, lists joined"

    dead = p.dead_letters(expect=bad_total)
    assert len(dead) == bad_total
    got = sorted(
        (h["forwarder.operation"], h["forwarder.error.stage"], h["forwarder.error.message"].split(":")[0])
        for h in map(headers_dict, dead)
    )
    expected = sorted((op, stage, field) for op, bad in BAD.items() for _, _, stage, field in bad)
    assert got == expected


def test_a_throttled_items_route_does_not_slow_events(bootstrap: str, tmp_path: Path) -> None:
    # The service lets PutItems through at 2 calls/s; the route's limiter starts from its documented 10.
    p, items_topic = _items_pipeline(
        bootstrap, tmp_path, ("--operation-quota-rps", "PutItems=2"), retry={"on_exhausted": "block"}
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    produce(bootstrap, items_topic, _catalog("items", 300, 300))  # 30 full calls
    events = _events(3000, 50)
    with p.run() as replica:
        wait_for(
            lambda: _items_accepted(emulator) > 0,
            60,
            what="items flowing",
        )
        started = time.monotonic()
        p.produce(events)
        wait_for(lambda: emulator.stats()["accepted_events"] >= len(events), 60, what="every event accepted")
        events_took = time.monotonic() - started
        items_done = _items_accepted(emulator)
        assert items_done < 300, "the items route was still throttled while the events went through"
        assert events_took < 10, f"events took {events_took:.1f}s behind a throttled items route"
        wait_for(
            lambda: _items_accepted(emulator) >= 300,
            90,
            what="every item accepted",
        )
        metrics = scrape(port)
        assert metrics['forwarder_route_calls_total{operation="items",outcome="throttled"}'] > 0
        assert metrics["forwarder_events_sent_total"] == len(events)
        assert replica.stop() == 0, replica.log_text()[-3000:]
    assert not p.dead_letters(timeout=3), "throttling dead-letters nothing"


def test_replay_sends_a_dead_lettered_record_back_to_its_operation(bootstrap: str, tmp_path: Path) -> None:
    # items-3 is not accepted yet (say, its schema's field is missing): its 5 updates are rejected.
    p, items_topic = _items_pipeline(
        bootstrap, tmp_path, ("--reject-item-id", "items-3"), events_partitions=1, metrics=False
    )
    emulator = p.emulator
    produce(bootstrap, items_topic, _catalog("items", 60, 12))
    with p.run() as replica:
        dead = p.dead_letters(expect=5, timeout=60)
        wait_committed(bootstrap, p.group, items_topic, 30)
        assert replica.stop() == 0, replica.log_text()[-3000:]
        assert {(h["forwarder.operation"], h["forwarder.error.stage"]) for h in map(headers_dict, dead)} == {
            ("items", "api")
        }
        emulator.set_faults(reject_item_ids=[])
        done = p.replay("--stage", "api", timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "5 accepted by items" in done.stdout, done.stdout
        assert "0 accepted by PutEvents" in done.stdout
    versions = _versions(emulator.calls("PutItems"), "items")
    assert versions["items-3"] == [0, 1, 2, 3, 4], "replayed to PutItems, in their order"
    assert all(len(v) == 5 for v in versions.values())


def test_a_route_in_outage_holds_its_records_while_events_go_on(bootstrap: str, tmp_path: Path) -> None:
    p, items_topic = _items_pipeline(bootstrap, tmp_path, (), retry={"outage_retry_interval_s": 1})
    emulator, port = p.emulator, p.port
    assert port is not None
    produce(bootstrap, items_topic, _catalog("items", 50, 50))
    p.produce(_events(500, 20))
    items_arn = ARN.format("ITEMS")
    emulator.set_faults(datasets_in_use=[items_arn])  # an import runs: PutItems answers 409 ResourceInUse
    with p.run() as replica:
        wait_for(lambda: emulator.stats()["accepted_events"] >= 500, 60, what="every event accepted")
        p.wait_committed(30)
        wait_for(
            lambda: scrape(port).get('forwarder_route_outage{operation="items"}') == 1, 30, what="outage"
        )
        assert _items_accepted(emulator) == 0
        assert not fully_committed(bootstrap, p.group, items_topic), "held records are not committed"
        emulator.set_faults(datasets_in_use=[])
        wait_for(
            lambda: _items_accepted(emulator) >= 50,
            60,
            what="items after",
        )
        wait_committed(bootstrap, p.group, items_topic, 30)
        assert scrape(port)['forwarder_route_outage{operation="items"}'] == 0
        assert replica.stop() == 0, replica.log_text()[-3000:]
    assert not p.dead_letters(timeout=3), "an outage dead-letters nothing"
