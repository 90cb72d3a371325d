"""What varies between the operations of Personalize's event-ingestion API, as one small object each.

An :class:`Operation` says where a call goes (the REST path the fast transport posts to, the boto3
client's method) and how its request is built from a batch key and its records (the JSON body for the
fast transport, the keyword arguments for boto3). The transports take an operation and know nothing
else of it, so another operation (PutItems on ``/items``, PutUsers, PutActions, PutActionInteractions)
is one module that defines its :class:`Operation` beside its key and record types, plus its line in
:data:`OPERATIONS`; the transports do not change. PutEvents is defined here; PutItems, PutUsers, PutActions
and PutActionInteractions in their own modules (``put_items.py``...), imported when chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import orjson

from forwarder.decode import Event, SessionKey

K = TypeVar("K")  # what one call is about (PutEvents: tracking id, user and session)
R = TypeVar("R")  # one record of a call (PutEvents: a decoded event)


@dataclass(frozen=True, slots=True)
class Operation(Generic[K, R]):
    """One operation of the API.

    ``body`` must return exactly the JSON that boto3 would send for ``params``'s arguments (the fast
    transport posts it as is); both get the batch's key and its records, in order, at most the service's
    maximum per call (the batcher's job).
    """

    name: str  # the API's name for it, as in IAM actions: personalize:<name>
    path: str  # the REST path, appended to the endpoint
    method: str  # the boto3 ``personalize-events`` client's method
    target: str  # the request field that names the destination (trackingId or datasetArn)
    body: Callable[[K, Sequence[R]], bytes]
    params: Callable[[K, Sequence[R]], dict[str, Any]]


def _put_events_body(key: SessionKey, events: Sequence[Event]) -> bytes:
    # Each event's JSON was encoded once, at decode time: the body is joined, not re-encoded.
    head = b'{"trackingId":' + orjson.dumps(key.tracking_id)
    if key.user_id is not None:
        head += b',"userId":' + orjson.dumps(key.user_id)
    return (
        head
        + b',"sessionId":'
        + orjson.dumps(key.session_id)
        + b',"eventList":['
        + b",".join(ev.encoded for ev in events)
        + b"]}"
    )


def _put_events_params(key: SessionKey, events: Sequence[Event]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "trackingId": key.tracking_id,
        "sessionId": key.session_id,
        "eventList": [ev.wire for ev in events],
    }
    if key.user_id is not None:
        params["userId"] = key.user_id
    return params


PUT_EVENTS: Final[Operation[SessionKey, Event]] = Operation(
    name="PutEvents",
    path="/events",
    method="put_events",
    target="trackingId",
    body=_put_events_body,
    params=_put_events_params,
)


# A route's operation name (as the configuration will spell it) -> "module:attribute" of its Operation.
# Imported on use, like the transports, so a replica loads only the operations it sends.
OPERATIONS: Final = {
    "events": "forwarder.personalize.operations:PUT_EVENTS",
    "items": "forwarder.personalize.put_items:PUT_ITEMS",
    "users": "forwarder.personalize.put_users:PUT_USERS",
    "actions": "forwarder.personalize.put_actions:PUT_ACTIONS",
    "action_interactions": "forwarder.personalize.put_action_interactions:PUT_ACTION_INTERACTIONS",
}


def operation(name: str) -> Operation[Any, Any]:
    """The registered operation called ``name`` (``events``, ``items``...); :class:`ValueError` otherwise."""
    where = OPERATIONS.get(name)
    if where is None:
        raise ValueError(f"unknown operation {name!r}; known: {sorted(OPERATIONS)}")
    module, _, attribute = where.partition(":")
    found: Operation[Any, Any] = getattr(importlib.import_module(module), attribute)
    return found
