"""``forwarder sample --operation ...``: the records of each operation are what its decoder accepts (every
limit), keyed as a route needs them, with repeated ids for per-id ordering, and the same for the same seed."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from forwarder.cli import build_parser
from forwarder.personalize.catalog import CatalogRecord
from forwarder.personalize.put_action_interactions import ActionInteractionRecord
from forwarder.records.action_interactions import ActionInteractionDecoder
from forwarder.records.actions import ActionDecoder
from forwarder.records.items import ItemDecoder
from forwarder.records.users import UserDecoder
from forwarder.sample import OPERATIONS, sample_records

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

DECODERS: dict[str, Any] = {
    "items": ItemDecoder(),
    "users": UserDecoder(),
    "actions": ActionDecoder(),
}


@pytest.mark.parametrize("operation", ["items", "users", "actions"])
def test_catalog_samples_decode_keyed_by_their_id_with_updates(
    operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock ticks a second at every reading, the worst case: the records must not depend on it.
    ticks = iter(range(1_800_000_000, 1_800_001_000))
    monkeypatch.setattr("forwarder.sample.time", SimpleNamespace(time=lambda: float(next(ticks))))
    # A fixed start: with the default (now) the two calls below differ when the clock ticks a second
    # between them (timestamps are whole seconds), which made this test flaky.
    records = list(sample_records(operation, 500, 50, seed=7, start=START))
    assert len(records) == 500
    ids: Counter[str] = Counter()
    for key, value in records:
        decoded = DECODERS[operation].decode(value)
        assert isinstance(decoded, CatalogRecord), decoded
        assert decoded.record_id == key
        assert "properties" in decoded.wire
        ids[key] += 1
    assert max(ids.values()) > 1, "some ids are updated again: per-id order matters"
    assert records == list(sample_records(operation, 500, 50, seed=7, start=START))


def test_action_interaction_samples_decode_keyed_by_session() -> None:
    decoder = ActionInteractionDecoder()
    records = list(sample_records("action_interactions", 500, 20, seed=7))
    sessions = set()
    for key, value in records:
        decoded = decoder.decode(value)
        assert isinstance(decoded, ActionInteractionRecord), decoded
        assert key == decoded.wire["sessionId"]
        sessions.add(key)
    assert len(sessions) == 20
    assert {v["eventType"] for _, v in records} == {"Viewed", "Taken", "Not Taken"}
    assert any("impression" in v for _, v in records)


def test_the_command_line_offers_every_operation() -> None:
    args = build_parser().parse_args(["sample", "--operation", "items", "--records", "5"])
    assert (args.operation, args.events, args.topic) == ("items", 5, None)
    assert set(OPERATIONS) == {"events", "items", "users", "actions", "action_interactions"}
    with pytest.raises(ValueError, match="unknown operation"):
        list(sample_records("deletes", 1, 1, 1))
