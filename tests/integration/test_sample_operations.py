"""``forwarder sample --operation ...`` against the real broker: every record of each operation arrives,
keyed as its route needs, each id's records in the order produced, and each decodes within the limits."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from typing import Any

import orjson
import pytest

from forwarder.records.action_interactions import ActionInteractionDecoder
from forwarder.records.actions import ActionDecoder
from forwarder.records.common import Problem
from forwarder.records.items import ItemDecoder
from forwarder.records.users import UserDecoder
from forwarder.sample import sample_records
from tests.support import delete_topic, read_topic, unique

pytestmark = pytest.mark.integration

DECODERS: dict[str, Any] = {
    "items": ItemDecoder(),
    "users": UserDecoder(),
    "actions": ActionDecoder(),
    "action_interactions": ActionInteractionDecoder(),
}
COUNT = 200


def _timeless(value: dict[str, Any]) -> dict[str, Any]:
    """The record without its times, which the sample draws from the clock when it runs."""
    return {k: v for k, v in value.items() if not k.endswith("timestamp")}


@pytest.mark.parametrize("operation", sorted(DECODERS))
def test_sample_produces_each_operation(bootstrap: str, operation: str) -> None:
    topic = unique(f"sample-{operation}")
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "forwarder", "sample", "--operation", operation),
                *("--records", str(COUNT), "--sessions", "20", "--seed", "3"),
                *("--bootstrap-servers", bootstrap, "--topic", topic),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"produced {COUNT} sample {operation} records" in done.stdout
        messages = read_topic(bootstrap, topic, expect=COUNT)
        assert len(messages) == COUNT
        by_key: dict[str, list[Any]] = defaultdict(list)
        for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
            value = orjson.loads(message.value())
            assert not isinstance(DECODERS[operation].decode(value), Problem), value
            by_key[message.key().decode()].append(_timeless(value))
        expected: dict[str, list[Any]] = defaultdict(list)
        for key, value in sample_records(operation, COUNT, 20, 3):
            expected[key].append(_timeless(orjson.loads(orjson.dumps(value))))
        assert by_key == expected, "every record, each key's in the order produced"
    finally:
        delete_topic(bootstrap, topic)
