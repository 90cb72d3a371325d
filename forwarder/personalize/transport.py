"""The :class:`Transport` protocol and the registry that ``personalize.transport`` chooses from.

A transport makes one call of one :class:`~forwarder.personalize.operations.Operation` and raises only
:class:`~forwarder.personalize.errors.PutEventsError` (one of its three kinds). Adding a transport is one
module that defines ``create(cfg, operation) -> Transport`` plus one line in :data:`TRANSPORTS` (and its
name in the configuration schema's choices). Modules are imported when chosen, so a replica does not load
what it does not use.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Final, Protocol

from forwarder.config import PersonalizeConfig
from forwarder.decode import Event, SessionKey
from forwarder.personalize.operations import PUT_EVENTS, Operation


class Transport(Protocol):
    """Calls of one operation, one batch a call (PutEvents: one session's events).

    The method keeps PutEvents' name; the transports send whatever operation they were built with
    (``key`` and ``events`` are then that operation's batch key and records: a datasetArn and items, for
    PutItems). Renaming it is left to the runtime's wiring of the other operations, which calls it.
    """

    async def put_events(self, key: SessionKey, events: Sequence[Event]) -> None:
        """Return when the service accepted the call; raise a
        :class:`~forwarder.personalize.errors.PutEventsError` otherwise."""

    async def close(self) -> None:
        """Release connections and threads."""


class TransportFactory(Protocol):
    """The ``create`` function of a transport module."""

    def __call__(self, cfg: PersonalizeConfig, operation: Operation[Any, Any]) -> Transport: ...


# name in the configuration -> the module whose ``create`` builds it
TRANSPORTS: Final = {
    "boto3": "forwarder.personalize.boto3_transport",
    "fast": "forwarder.personalize.fast_transport",
}


def make_transport(cfg: PersonalizeConfig, operation: Operation[Any, Any] = PUT_EVENTS) -> Transport:
    """The transport ``cfg.transport`` names, for ``operation``; :class:`ValueError` for an unknown name."""
    module = TRANSPORTS.get(cfg.transport)
    if module is None:
        raise ValueError(
            f"personalize.transport: unknown transport {cfg.transport!r}; known: {sorted(TRANSPORTS)}"
        )
    create: TransportFactory = importlib.import_module(module).create
    return create(cfg, operation)
