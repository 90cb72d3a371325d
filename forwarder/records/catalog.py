"""The decoder items, users and actions share: an id, and the other fields as ``properties``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from forwarder.personalize import limits
from forwarder.personalize.catalog import CatalogRecord
from forwarder.personalize.limits import RecordShape
from forwarder.records.common import (
    UNSUPPORTED,
    FieldError,
    Problem,
    PropertiesBuilder,
    PropertiesMapping,
    as_object,
    encode_wire,
    getter,
    guarded,
    identifier,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogMapping:
    """Where a message keeps an item's, user's or action's fields.

    ``id_path`` is the dotted path of its id (default: the API's own name, ``itemId``...);
    ``delete_field``, when set, names a field whose true value marks a delete (see
    :mod:`forwarder.records.common` for what a delete does); ``properties`` says which fields become
    properties.
    """

    id_path: str | None = None
    delete_field: str | None = None
    properties: PropertiesMapping = field(default_factory=PropertiesMapping)


class CatalogDecoder:
    """A message's value -> a :class:`CatalogRecord` within ``shape``'s limits, or a :class:`Problem`."""

    def __init__(self, shape: RecordShape, mapping: CatalogMapping | None = None) -> None:
        mapping = mapping or CatalogMapping()
        self._shape = shape
        id_path = mapping.id_path or shape.id_field
        self._id = getter(id_path)
        self._delete = getter(mapping.delete_field) if mapping.delete_field else None
        own = [id_path.split(".")[0]]
        if mapping.delete_field:
            own.append(mapping.delete_field.split(".")[0])
        self._properties = PropertiesBuilder(mapping.properties, own)

    def decode(self, value: Any) -> CatalogRecord | Problem:
        """Decode one parsed message value (``None`` for a tombstone). Never raises for bad content."""
        obj = as_object(value)
        if isinstance(obj, Problem):
            return obj
        return guarded(log, self._build, obj)

    def _build(self, obj: Any) -> CatalogRecord | Problem:
        shape = self._shape
        record_id = identifier(shape.id_field, self._id(obj), required=True)
        assert record_id is not None
        if self._delete is not None and self._delete(obj) is True:
            return Problem(
                UNSUPPORTED,
                "Delete",
                f"{shape.id_field}: {record_id[:80]!r} is marked deleted: Personalize's write API has no delete",
            )
        wire: dict[str, Any] = {shape.id_field: record_id}
        properties = self._properties.build(obj)
        if properties is not None:
            wire["properties"] = properties
        problem = limits.check_catalog_record(shape, wire, "")
        if problem:
            raise FieldError(problem.lstrip("."))
        return CatalogRecord(record_id, wire, encode_wire(wire))
