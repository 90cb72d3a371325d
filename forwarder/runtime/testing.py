"""In-memory stand-ins for the runtime's outside world: a group consumer, the dead-letter producer and a
PutEvents transport. They keep the contracts of the real ones (see :mod:`forwarder.runtime.source`), so
flow control, commits and rebalances are tested without a broker; delivery itself is tested end to end
against the real broker and the emulator.

Time is bounded everywhere: :meth:`FakeSource.consume` waits at most its timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Message

from forwarder.config import Config
from forwarder.consume import Committed, Partitions, RebalanceHandler
from forwarder.decode import Event, SessionKey
from forwarder.offsets import TopicPartitionKey
from forwarder.outcome import Reason
from forwarder.personalize.errors import PutEventsError
from forwarder.runtime.app import App


class FakeSource:
    """A group consumer in memory: the test assigns, revokes and loses partitions and appends messages."""

    def __init__(self, handler: RebalanceHandler) -> None:
        self._handler = handler
        self.rebalancing = False
        self.paused_partitions = 0
        self.assignment: set[TopicPartitionKey] = set()
        self.logs: dict[TopicPartitionKey, list[Message]] = {}  # every message appended, by partition
        self._read: dict[TopicPartitionKey, int] = {}  # next index to hand out, by partition
        self.committed: dict[TopicPartitionKey, int] = {}
        self.metadata: dict[TopicPartitionKey, str] = {}  # committed metadata ("" when none was given)
        self.commits: list[dict[TopicPartitionKey, int]] = []  # every commit call's accepted positions
        # every commit call's accepted partitions with their (position, metadata)
        self.commit_log: list[dict[TopicPartitionKey, tuple[int, str]]] = []
        self.polls_paused = 0  # consume calls made with paused=True
        self.closed = False

    # ---- what the test does ----------------------------------------------------------------------

    def append(self, tp: TopicPartitionKey, values: Sequence[bytes | None]) -> None:
        """Append messages to a partition's log (offsets continue the log)."""
        log = self.logs.setdefault(tp, [])
        for value in values:
            log.append(Message(topic=tp[0], partition=tp[1], offset=len(log), value=value))

    async def assign(self, partitions: Partitions) -> None:
        """Assign partitions; reading resumes from the committed position. A handler with
        ``reads_committed`` gets the committed offset and metadata of those the group committed."""
        for tp in partitions:
            self.assignment.add(tp)
            self._read[tp] = self.committed.get(tp, 0)
        if self._handler.reads_committed:
            committed = {
                tp: Committed(self.committed[tp], self.metadata.get(tp, ""))
                for tp in partitions
                if tp in self.committed
            }
            await self._handler.assigned_committed(partitions, committed)
        else:
            await self._handler.assigned(partitions)

    async def revoke(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        """Revoke partitions the way the Kafka consumer does: the handler drains and returns positions,
        which are committed before the partitions go. Returns what was committed."""
        self.rebalancing = True
        try:
            positions = await self._handler.revoking(partitions)
            done = self._commit(positions, await self._handler.revoking_metadata(positions))
            await self._handler.revoked(partitions)
        finally:
            self.rebalancing = False
        self.assignment.difference_update(partitions)
        return done

    async def lose(self, partitions: Partitions) -> None:
        """Lose partitions: no commit."""
        self.assignment.difference_update(partitions)
        await self._handler.lost(partitions)

    # ---- the Source protocol -----------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Nothing to join: the test assigns."""

    async def consume(self, max_messages: int, timeout: float, paused: bool = False) -> list[Message]:
        """Messages of assigned partitions not read yet, up to ``max_messages``; none while paused."""
        self.paused_partitions = len(self.assignment) if paused else 0
        if paused:
            self.polls_paused += 1
            await asyncio.sleep(timeout)
            return []
        out: list[Message] = []
        for tp in sorted(self.assignment):
            log, start = self.logs.get(tp, []), self._read.get(tp, 0)
            taken = log[start : start + max_messages - len(out)]
            self._read[tp] = start + len(taken)
            out += taken
        if not out:
            await asyncio.sleep(timeout)
        else:
            await asyncio.sleep(0)  # a real poll yields to the loop too
        return out

    def _commit(
        self,
        positions: dict[TopicPartitionKey, int],
        metadata: Mapping[TopicPartitionKey, str] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        done = {tp: pos for tp, pos in positions.items() if tp in self.assignment}
        meta = metadata or {}
        self.committed.update(done)
        self.metadata.update({tp: meta.get(tp, "") for tp in done})
        if done:
            self.commits.append(done)
            self.commit_log.append({tp: (pos, meta.get(tp, "")) for tp, pos in done.items()})
        return done

    async def commit(
        self,
        positions: dict[TopicPartitionKey, int],
        metadata: Mapping[TopicPartitionKey, str] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        """Commit the positions (with their metadata) of partitions still assigned."""
        return self._commit(positions, metadata)

    async def watermarks(self, partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The log ends."""
        return {tp: len(self.logs.get(tp, [])) for tp in partitions}

    async def reachable(self) -> bool:
        """Always."""
        return True

    async def close(self) -> None:
        """Leave the group: a final revoke of everything assigned."""
        if self.assignment:
            await self.revoke(sorted(self.assignment))
        self.closed = True


class FakeDeadLetters:
    """Dead-letter records kept in a list; each is acknowledged on the :meth:`poll` after its write,
    unless ``hold`` is set (a broker that does not answer)."""

    def __init__(self) -> None:
        self.records: list[tuple[Message, Reason, str | None]] = []
        self._unacknowledged: list[Callable[[], None]] = []
        self.hold = False

    @property
    def pending(self) -> int:
        """Records written and not acknowledged yet."""
        return len(self._unacknowledged)

    def write(
        self, message: Message, reason: Reason, on_done: Callable[[], None], session_id: str | None = None
    ) -> None:
        """Keep the record; acknowledge it on a later poll."""
        self.records.append((message, reason, session_id))
        self._unacknowledged.append(on_done)

    def poll(self) -> None:
        """Acknowledge what was written (unless held)."""
        if self.hold:
            return
        done, self._unacknowledged = self._unacknowledged, []
        for on_done in done:
            on_done()

    def flush(self, timeout: float) -> int:
        """Acknowledge what was written (unless held); return how many are still pending."""
        self.poll()
        return self.pending


class FakeTransport:
    """PutEvents in memory: ``answer(events)`` returns the error to raise for a call, or None to accept.
    While ``gate`` is set, calls wait for it to open (a slow service)."""

    def __init__(self, answer: Callable[[Sequence[Event]], PutEventsError | None] | None = None) -> None:
        self._answer = answer
        self.accepted: list[Event] = []
        self.gate: asyncio.Event | None = None

    async def put_events(self, key: SessionKey, events: Sequence[Event]) -> None:
        """Accept the call, or raise what ``answer`` says."""
        if self.gate is not None:
            await self.gate.wait()
        error = self._answer(events) if self._answer is not None else None
        if error is not None:
            raise error
        self.accepted.extend(events)

    async def close(self) -> None:
        """Nothing to release."""


class Harness:
    """An :class:`~forwarder.runtime.app.App` on the fakes above, running as a task on the current loop.

    Use ``async with Harness(cfg) as h:``; leaving the block stops the app (a graceful stop, bounded by
    ``shutdown.timeout_s``) and waits for it.
    """

    def __init__(self, cfg: Config, transport: FakeTransport | None = None) -> None:
        self.cfg = cfg
        self.transport = transport or FakeTransport()
        self.dead_letters = FakeDeadLetters()
        self.sources: list[FakeSource] = []
        self._task: asyncio.Task[int] | None = None

    def _make_source(self, handler: RebalanceHandler) -> FakeSource:
        source = FakeSource(handler)
        self.sources.append(source)
        return source

    @property
    def source(self) -> FakeSource:
        """The app's source."""
        return self.sources[0]

    async def __aenter__(self) -> Harness:
        self.app = App(
            self.cfg, source=self._make_source, dead_letters=self.dead_letters, transport=self.transport
        )
        self._task = asyncio.get_running_loop().create_task(self.app.run(install_signal_handlers=False))
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self.app.request_stop("test over")
        self.exit_code = await asyncio.wait_for(self._task, self.cfg.shutdown.timeout_s + 10)


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``condition()`` holds, checking every 5 ms; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s")
        await asyncio.sleep(0.005)
