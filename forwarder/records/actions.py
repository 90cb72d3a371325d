"""The record decoder of PutActions: a message's value -> a valid action or a
:class:`~forwarder.records.common.Problem` naming the field.

The id comes from ``actionId`` (or ``id_path``); every other field (or the picked ones) becomes
``properties``, camelCase, as one JSON string (see :class:`~forwarder.records.common.PropertiesMapping`).
A tombstone or a delete marker is reason ``unsupported`` (see :mod:`forwarder.records.common`).
"""

from __future__ import annotations

from forwarder.personalize.limits import ACTION
from forwarder.records.catalog import CatalogDecoder, CatalogMapping


class ActionDecoder(CatalogDecoder):
    """:class:`~forwarder.records.catalog.CatalogDecoder` with the actions limits."""

    def __init__(self, mapping: CatalogMapping | None = None) -> None:
        super().__init__(ACTION, mapping)
