"""Source: what the runtime needs of a consumer. :class:`forwarder.consume.KafkaConsumer` is one;
:class:`forwarder.runtime.testing.FakeSource` is the in-memory one the unit tests use.

Contract (the one KafkaConsumer keeps):
- partitions come and go through the :class:`~forwarder.consume.RebalanceHandler` the source was built
  with; its coroutines run on the event loop, served from inside :meth:`Source.consume`;
- on assignment a handler with ``reads_committed`` gets each new partition's committed offset and
  metadata (``assigned_committed``) before any message of it is returned;
- on revoke the source commits the positions ``revoking`` returned, with the metadata
  ``revoking_metadata`` gives for them, before the partitions are let go;
- :meth:`Source.commit` commits only partitions still assigned, and returns those the broker accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from confluent_kafka import Message

from forwarder.offsets import TopicPartitionKey


class Source(Protocol):
    """A group consumer, asynchronous, with commits under the runtime's control."""

    rebalancing: bool  # a rebalance callback is running: commits are its business meanwhile
    paused_partitions: int  # partitions paused by the last consume(paused=True)

    async def subscribe(self) -> None:
        """Join the group."""

    async def consume(self, max_messages: int, timeout: float, paused: bool = False) -> list[Message]:
        """Up to ``max_messages`` within ``timeout`` seconds; ``paused`` pauses every assigned partition
        (polling goes on, so the group keeps this member)."""

    async def commit(
        self,
        positions: dict[TopicPartitionKey, int],
        metadata: Mapping[TopicPartitionKey, str] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        """Commit positions, each with its metadata string if given; return those accepted."""

    async def watermarks(self, partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """High watermarks known for the partitions."""

    async def reachable(self) -> bool:
        """Whether a broker answers."""

    async def close(self) -> None:
        """Leave the group (a final revoke commits what is finished)."""
