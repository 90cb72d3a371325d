"""Hooks: what a variant of the pipeline (``forwarder replay``) changes, and the narrow view of the
runtime it is given. The plain daemon has no hooks."""

from __future__ import annotations

from typing import Protocol

from confluent_kafka import Message

from forwarder.metrics import Metrics
from forwarder.offsets import TopicPartitionKey


class PartitionView(Protocol):
    """One assigned partition's progress (:class:`forwarder.offsets.PartitionOffsets`)."""

    @property
    def unfinished(self) -> int:
        """Messages taken and not finished."""

    @property
    def position(self) -> int | None:
        """The committable offset, None before the first message."""


class RuntimeView(Protocol):
    """What hooks may see and do of the running replica."""

    @property
    def metrics(self) -> Metrics:
        """The replica's metrics."""

    def load(self) -> int:
        """Events held in memory: buffered, in PutEvents calls, or awaiting a dead-letter acknowledgement."""

    def partition(self, tp: TopicPartitionKey) -> PartitionView | None:
        """The partition's progress if it is assigned here."""

    def request_stop(self, reason: str) -> None:
        """Begin a graceful stop."""


class Hooks(Protocol):
    """The points where a variant changes the pipeline."""

    # The decoder's topic → topic id map (derived event ids carry the id), handed over by the App when it
    # is built; a variant may set the id a message's topic had (a replay: the one its record names).
    topic_ids: dict[str, str] | None

    def accept(self, message: Message) -> bool:
        """Whether this run takes the message at all; one not taken is not tracked, so not committed."""

    def prepare(self, message: Message) -> Message | None:
        """The message to decode in place of the one consumed, or None to skip it (it counts as finished)."""

    def finished(self, runtime: RuntimeView) -> bool:
        """Whether the run is complete (checked on every tick); the daemon itself never is."""

    def progress(self, runtime: RuntimeView) -> None:
        """Called on every tick, to show progress."""
