"""PutUsers (``POST /users``): up to 10 users of one Users dataset per call, named by ``datasetArn``.

A user is its ``userId`` and an optional ``properties`` JSON string of at most 24,000 characters
(:data:`~forwarder.personalize.limits.USER`). A record: :class:`~forwarder.personalize.catalog.CatalogRecord`;
its decoder: :mod:`forwarder.records.users`.
"""

from __future__ import annotations

from typing import Final

from forwarder.personalize.catalog import CatalogRecord, catalog_operation
from forwarder.personalize.limits import USER
from forwarder.personalize.operations import Operation

PUT_USERS: Final[Operation[str, CatalogRecord]] = catalog_operation("PutUsers", "/users", "put_users", USER)
