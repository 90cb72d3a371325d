"""PutActions (``POST /actions``): up to 10 actions of one Actions dataset per call, named by ``datasetArn``.

An action is its ``actionId`` and an optional ``properties`` JSON string of at most 32,000 characters
(:data:`~forwarder.personalize.limits.ACTION`). A record: :class:`~forwarder.personalize.catalog.CatalogRecord`;
its decoder: :mod:`forwarder.records.actions`.
"""

from __future__ import annotations

from typing import Final

from forwarder.personalize.catalog import CatalogRecord, catalog_operation
from forwarder.personalize.limits import ACTION
from forwarder.personalize.operations import Operation

PUT_ACTIONS: Final[Operation[str, CatalogRecord]] = catalog_operation(
    "PutActions", "/actions", "put_actions", ACTION
)
