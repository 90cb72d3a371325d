"""Outcome: the one vocabulary for what became of a message, shared by decode, send, dead-letter and replay.

- :class:`Stage` names where a message failed. Its values are wire strings: they are written to the
  ``forwarder.error.stage`` header of dead-letter records and selected by ``forwarder replay --stage``,
  so they never change.
- :class:`Reason` is why a message goes to the dead-letter topic: stage, error class, a message naming
  the field or the service's answer, and the PutEvents attempts made (0 before sending).
- :class:`Envelope` is a consumed message with its commit coordinates: the partition state whose offset
  it finishes, and that offset. Only the runtime creates envelopes with an origin; everything else reads
  the message. In a replay the message is the rebuilt original, and its own coordinates are not the
  dead-letter topic's, which is why the coordinates travel beside it instead of being read from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from confluent_kafka import Message


class Stage(StrEnum):
    """Where a message failed; the value is the wire string of the dead-letter header."""

    DECODE = "decode"  # the bytes are not a JSON object
    VALIDATE = "validate"  # a field is missing or breaks a PutEvents limit
    API = "api"  # the service rejected that very event
    RETRY_EXHAUSTED = "retry_exhausted"  # throttling, 5xx or timeouts outlasted the retry budget
    OUTAGE = "outage"  # a tracking id of the message's own was refused for longer than retry.outage_max_s
    UNSUPPORTED = "unsupported"  # a tombstone or delete of a record route: the write API has no delete


@dataclass(slots=True, frozen=True)
class Reason:
    """Why a message is dead-lettered. Built only on the failure path, so a dataclass costs nothing hot."""

    stage: Stage
    error_class: str
    message: str
    attempts: int = 0  # PutEvents calls made for it (0: it never reached the service)
    operation: str | None = None  # a record route's operation (items...), for replay; None: events


class Origin(Protocol):
    """The partition state a message's offset is finished on (:class:`forwarder.offsets.PartitionOffsets`)."""

    @property
    def tp(self) -> tuple[str, int]:
        """The topic and partition."""

    def finish(self, offset: int) -> None:
        """The message at ``offset`` is finished (accepted, or dead-lettered and acknowledged)."""


class _Detached:
    """The origin of a message that is not tracked (decoded outside the runtime: dry runs, tests)."""

    __slots__ = ()
    tp = ("", -1)

    def finish(self, offset: int) -> None:
        """Nothing to finish."""


DETACHED: Origin = _Detached()


class Envelope:
    """A message with its commit coordinates. A plain slotted class: one is made per consumed message."""

    __slots__ = ("message", "offset", "origin")

    def __init__(self, message: Message, origin: Origin = DETACHED, offset: int = 0) -> None:
        self.message = message
        self.origin = origin
        self.offset = offset

    def finish(self) -> None:
        """Finish this message's offset on its partition."""
        self.origin.finish(self.offset)
