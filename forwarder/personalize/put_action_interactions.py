"""PutActionInteractions (``POST /action-interactions``): up to 10 action interactions per call, named by
``trackingId``.

Unlike PutEvents, each interaction carries its own ``sessionId`` and ``userId``, so one call may mix
sessions and users: the batch key is the tracking id alone. Limits:
:func:`~forwarder.personalize.limits.check_action_interaction`; decoder: :mod:`forwarder.records.action_interactions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from forwarder.personalize.operations import Operation


@dataclass(frozen=True, slots=True)
class ActionInteractionRecord:
    """One valid action interaction in its wire form (``timestamp`` in epoch seconds, ``properties`` a
    JSON string); ``action_id`` is what per-id ordering keys on; ``encoded`` is ``wire`` as compact JSON."""

    action_id: str
    wire: dict[str, Any]
    encoded: bytes


def _body(tracking_id: str, records: Sequence[ActionInteractionRecord]) -> bytes:
    return (
        b'{"trackingId":'
        + orjson.dumps(tracking_id)
        + b',"actionInteractions":['
        + b",".join(record.encoded for record in records)
        + b"]}"
    )


def _params(tracking_id: str, records: Sequence[ActionInteractionRecord]) -> dict[str, Any]:
    return {"trackingId": tracking_id, "actionInteractions": [record.wire for record in records]}


PUT_ACTION_INTERACTIONS: Final[Operation[str, ActionInteractionRecord]] = Operation(
    name="PutActionInteractions",
    path="/action-interactions",
    method="put_action_interactions",
    target="trackingId",
    body=_body,
    params=_params,
)
