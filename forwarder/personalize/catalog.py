"""What PutItems, PutUsers and PutActions share: a call is one ``datasetArn`` and 1..10 records, each an
id and an optional ``properties`` JSON string. Each operation's own module (:mod:`.put_items`,
:mod:`.put_users`, :mod:`.put_actions`) builds its :class:`~forwarder.personalize.operations.Operation`
with :func:`catalog_operation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from forwarder.personalize.limits import RecordShape
from forwarder.personalize.operations import Operation


@dataclass(frozen=True, slots=True)
class CatalogRecord:
    """One valid item, user or action in its wire form.

    ``record_id`` is its itemId, userId or actionId (what per-id ordering keys on); ``wire`` is the
    object as it goes into the request's list; ``encoded`` is ``wire`` as compact JSON, encoded once.
    """

    record_id: str
    wire: dict[str, Any]
    encoded: bytes


def catalog_operation(name: str, path: str, method: str, shape: RecordShape) -> Operation[str, CatalogRecord]:
    """The :class:`Operation` of PutItems, PutUsers or PutActions; its batch key is the ``datasetArn``."""
    head = b',"' + shape.list_field.encode() + b'":['

    def body(dataset_arn: str, records: Sequence[CatalogRecord]) -> bytes:
        # Each record's JSON was encoded once, when it was decoded: the body is joined, not re-encoded.
        return (
            b'{"datasetArn":'
            + orjson.dumps(dataset_arn)
            + head
            + b",".join(record.encoded for record in records)
            + b"]}"
        )

    def params(dataset_arn: str, records: Sequence[CatalogRecord]) -> dict[str, Any]:
        return {"datasetArn": dataset_arn, shape.list_field: [record.wire for record in records]}

    return Operation(name=name, path=path, method=method, target="datasetArn", body=body, params=params)
