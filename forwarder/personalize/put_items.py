"""PutItems (``POST /items``): up to 10 items of one Items dataset per call, named by ``datasetArn``.

An item is its ``itemId`` and an optional ``properties`` JSON string of at most 32,000 characters
(:data:`~forwarder.personalize.limits.ITEM`). A record: :class:`~forwarder.personalize.catalog.CatalogRecord`;
its decoder: :mod:`forwarder.records.items`.
"""

from __future__ import annotations

from typing import Final

from forwarder.personalize.catalog import CatalogRecord, catalog_operation
from forwarder.personalize.limits import ITEM
from forwarder.personalize.operations import Operation

PUT_ITEMS: Final[Operation[str, CatalogRecord]] = catalog_operation("PutItems", "/items", "put_items", ITEM)
