"""Replay: re-drive dead-lettered records through the same pipeline, after a fix to mapping or quota.

``forwarder replay --config F --from-dead-letter [--stage S ...] [--since TIME] [--dry-run]`` reads the
dead-letter topic up to its end as it is when the replay starts, rebuilds each original message (its
key, value, headers and timestamp, and its original topic/partition/offset from the forwarder's headers)
and hands it to the same decode → batch → send → dead-letter path as the daemon. Because the original
coordinates come back, a message without an ``eventId`` gets the same derived id as the first time, so
the service does not count a replayed event twice.

Progress is kept per stage, under the group ``<base>.<stage>`` (``<base>`` is ``<kafka.group_id>.replay``
or ``--group``), and a replay runs one pass per stage it replays (every stage without ``--stage``). So a
replay stopped half way resumes where it stopped, a second replay does not re-send what the first
finished, and a replay of one stage never moves past the records of another: those stay for a later
replay of their stage. A ``--since`` replay keeps no progress at all (a fresh group each time): the
older records it skips stay for later replays, and what it sent may be sent again by a later replay of
its stage (with the same event ids, so the service keeps one). Records that fail again go back to the
dead-letter topic with their new reason (after the snapshot end, taken once for every pass, so this run
does not read them again). ``--dry-run`` sends nothing and commits nothing: it decodes each record with
the current mapping and reports what would happen.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from forwarder.config import Config
from forwarder.dead_letter import (
    HEADER_AT,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_STAGE,
    HEADER_TOPIC,
    HEADER_TOPIC_ID,
    HEADER_VALUE_DROPPED,
    header_list,
)
from forwarder.decode import Decoder
from forwarder.metrics import Metrics, counter_by_label, counter_total
from forwarder.outcome import Envelope, Reason, Stage

if TYPE_CHECKING:
    from forwarder.runtime.hooks import RuntimeView  # the runtime is heavy; `--help` and --dry-run skip it

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0
STAGES = tuple(stage.value for stage in Stage)  # the stages a dead-letter record can carry
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> int:
    """``--since`` as epoch milliseconds: ISO-8601 (``2026-11-29T08:00Z``) or an age (``90m``, ``2h``, ``1d``)."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text.strip())
    if match:
        return int((now - float(match.group(1)) * _UNIT_S[match.group(2)]) * 1000)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since: {text!r} is neither ISO-8601 nor an age like 2h"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _forwarder_headers(record: Message) -> dict[str, str]:
    """The record's ``forwarder.*`` headers as text (the first of a repeated name)."""
    out: dict[str, str] = {}
    for key, value in header_list(record):
        if key.startswith("forwarder.") and key not in out:
            out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")
    return out


def _count(text: str | None) -> int | None:
    """A non-negative integer written in ASCII digits, else None."""
    return int(text) if text and text.isascii() and text.isdigit() else None


def original_message(record: Message, headers: dict[str, str] | None = None) -> Message | None:
    """The message a dead-letter record was made from, or None when it cannot be rebuilt (coordinates
    missing or not numbers: a record written by hand or by another tool)."""
    ours = _forwarder_headers(record) if headers is None else headers
    topic = ours.get(HEADER_TOPIC)
    partition = _count(ours.get(HEADER_PARTITION))
    offset = _count(ours.get(HEADER_OFFSET))
    if not topic or HEADER_VALUE_DROPPED in ours or partition is None or offset is None:
        return None
    headers_kept = [(k, v) for k, v in header_list(record) if not k.startswith("forwarder.")]
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=record.key(),
        value=record.value(),
        headers=headers_kept,
        timestamp=record.timestamp(),
    )


class ReplaySelection:
    """Which dead-letter records a replay takes: by stage and by when they were dead-lettered."""

    def __init__(self, stages: list[str] | None, since_ms: int | None) -> None:
        self.stages = set(stages) if stages else None
        self.since_ms = since_ms
        self.counts: Counter[str] = Counter()

    def pick(self, record: Message) -> Message | None:
        """The original message to replay, or None (counted by reason) when it is not picked."""
        self.counts["read"] += 1
        ours = _forwarder_headers(record)
        if self.stages is not None and ours.get(HEADER_STAGE) not in self.stages:
            self.counts["other stage"] += 1
            return None
        if self.since_ms is not None:
            at = _count(ours.get(HEADER_AT))
            when = at if at is not None else record.timestamp()[1]
            if when < self.since_ms:
                self.counts["before --since"] += 1
                return None
        original = original_message(record, ours)
        if original is None:
            self.counts["not replayable (no original coordinates or value)"] += 1
            return None
        self.counts["replayed"] += 1
        return original


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, done: int, detail: str = "", final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.25 if self._tty else PROGRESS_EVERY_S):
            return
        self._last = now
        pct = 100.0 * done / self.total if self.total else 100.0
        if self._tty:
            width = 30
            filled = int(width * pct / 100)
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if final else ""
            print(
                f"\rreplay [{bar}] {done}/{self.total} ({pct:.0f}%) {detail}",
                end=end,
                file=sys.stderr,
                flush=True,
            )
        else:
            log.info("replay: %d/%d records (%.0f%%) %s", done, self.total, pct, detail)


class ReplayHooks:
    """Turns the daemon into a bounded replay of the dead-letter topic (see
    :class:`forwarder.runtime.hooks.Hooks`)."""

    def __init__(
        self, selection: ReplaySelection, ends: dict[int, int], starts: dict[int, int], topic: str
    ) -> None:
        self.selection = selection
        self.topic = topic
        self.ends = ends  # partition -> high watermark when the replay started
        self.starts = starts  # partition -> where the replay group had got to
        self.total = sum(max(0, ends[p] - starts.get(p, 0)) for p in ends)
        self._progress = _Progress(self.total)
        self.topic_ids: dict[str, str] | None = None  # the app's decoder's, set when the app is built

    def accept(self, message: Message) -> bool:
        """Only records that were there when the replay started."""
        return (message.offset() or 0) < self.ends.get(message.partition() or 0, 0)

    def prepare(self, message: Message) -> Message | None:
        """The original message, if picked; its original topic's id (from the record) goes to the decoder,
        which decodes it next, so its derived event id is the one it had the first time."""
        original = self.selection.pick(message)
        if original is not None and self.topic_ids is not None:
            topic_id = _forwarder_headers(message).get(HEADER_TOPIC_ID)
            if topic_id:
                self.topic_ids[original.topic() or ""] = topic_id
            else:  # dead-lettered before topic ids were recorded: its id was topic:partition:offset
                self.topic_ids.pop(original.topic() or "", None)
        return original

    def finished(self, runtime: RuntimeView) -> bool:
        """Every partition finished up to its snapshot end, and nothing left in flight."""
        for partition, end in self.ends.items():
            if self.starts.get(partition, 0) >= end:
                continue  # nothing to read there
            state = runtime.partition((self.topic, partition))
            if state is None or state.unfinished:
                return False
            position = state.position
            if position is None or position < end:
                return False
        return runtime.load() == 0

    def progress(self, runtime: RuntimeView) -> None:
        """A bar on a terminal, a log line every few seconds otherwise."""
        done = self.selection.counts["read"]
        self._progress.show(done, f"{counter_total(runtime.metrics.events_sent):.0f} accepted")

    def report(self, metrics: Metrics) -> str:
        """What the replay did, in one paragraph, from the run's metrics."""
        self._progress.show(self.selection.counts["read"], final=True)
        sent = int(counter_total(metrics.events_sent))
        again = {stage: int(n) for stage, n in counter_by_label(metrics.dead_lettered, "stage").items() if n}
        parts = [f"{n} {reason}" for reason, n in sorted(self.selection.counts.items())]
        # Records of a route go back to their own operation (by their original topic): each counted apart.
        routed = counter_by_label(metrics.route_records_sent, "operation")
        routes = "".join(f"{int(n)} accepted by {operation}; " for operation, n in sorted(routed.items()))
        return (
            f"replay of {self.topic}: {'; '.join(parts) or 'nothing to read'}; "
            f"{sent} accepted by PutEvents; {routes}"
            f"{sum(again.values())} dead-lettered again"
            + (f" ({', '.join(f'{s}: {n}' for s, n in sorted(again.items()))})" if again else "")
        )


def progress_group(base: str, stage: str, since_ms: int | None) -> str:
    """The consumer group holding a replay pass's progress: one per stage; a fresh one for ``--since``,
    whose progress must not hide the older records it skipped from later replays."""
    if since_ms is not None:
        return f"{base}.{stage}.since-{uuid.uuid4().hex[:12]}"
    return f"{base}.{stage}"


def _snapshot(
    cfg: Config, group: str, ends: dict[int, int] | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    """High watermarks (unless given) and the replay group's committed offsets of the dead-letter topic."""
    topic = cfg.dead_letter.topic
    consumer = Consumer(
        {
            **cfg.kafka.client,
            "bootstrap.servers": cfg.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise SystemExit(f"dead-letter topic {topic} not found on {cfg.kafka.bootstrap_servers}")
        partitions = sorted(metadata.partitions)
        if ends is None:
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1] for p in partitions
            }
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        starts = {tp.partition: max(tp.offset, 0) for tp in committed}
        return ends, starts
    finally:
        consumer.close()


def _dry_run(
    cfg: Config, selection: ReplaySelection, ends: dict[int, int], stage_starts: dict[str, dict[int, int]]
) -> int:
    topic = cfg.dead_letter.topic
    decoder = Decoder(cfg.mapping, cfg.personalize.tracking_id)
    consumer = Consumer(
        {
            **cfg.kafka.client,
            "bootstrap.servers": cfg.kafka.bootstrap_servers,
            "group.id": f"{cfg.kafka.group_id}.replay-dry-run",
            "enable.auto.commit": False,
        }
    )
    outcomes: Counter[str] = Counter()
    # Read from where the least advanced stage got to; a record its own stage's group is past is done.
    starts = {p: min(s.get(p, 0) for s in stage_starts.values()) for p in ends}
    total = sum(max(0, ends[p] - starts.get(p, 0)) for p in ends)
    progress = _Progress(total)
    try:
        consumer.assign([TopicPartition(topic, p, starts.get(p, 0) or OFFSET_BEGINNING) for p in ends])
        remaining = {p for p, end in ends.items() if end > starts.get(p, 0)}
        idle_since = time.monotonic()
        while remaining and time.monotonic() - idle_since < 30:
            for record in consumer.consume(500, 0.5):
                if record.error() is not None:
                    continue
                idle_since = time.monotonic()
                partition, offset = record.partition() or 0, record.offset() or 0
                if offset >= ends[partition]:
                    remaining.discard(partition)
                    continue
                if offset == ends[partition] - 1:
                    remaining.discard(partition)
                stage = _forwarder_headers(record).get(HEADER_STAGE, "")
                if stage in stage_starts and offset < stage_starts[stage].get(partition, 0):
                    outcomes["already replayed"] += 1
                    continue
                original = selection.pick(record)
                if original is not None:
                    result = decoder.decode(Envelope(original))
                    if isinstance(result, Reason):
                        outcomes[f"would be dead-lettered again ({result.stage}: {result.message[:80]})"] += 1
                    else:
                        outcomes["would be sent"] += 1
            progress.show(selection.counts["read"])
    finally:
        consumer.close()
    progress.show(selection.counts["read"], final=True)
    print(f"dry run of {topic}: nothing sent, nothing committed")
    for reason, n in sorted(selection.counts.items()):
        print(f"  {n:>8}  {reason}")
    for outcome, n in outcomes.most_common():
        print(f"  {n:>8}  {outcome}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``forwarder replay``."""
    parser.add_argument("--config", "-c", required=True, help="YAML configuration file")
    parser.add_argument(
        "--from-dead-letter",
        action="store_true",
        required=True,
        help="read the configured dead_letter.topic (the only source for now; stated for clarity)",
    )
    parser.add_argument(
        "--stage",
        action="append",
        choices=[stage.value for stage in Stage],
        help="only records dead-lettered at this stage (repeatable)",
    )
    parser.add_argument(
        "--since", type=parse_since, help="only records dead-lettered since: ISO-8601 or an age (2h)"
    )
    parser.add_argument("--dry-run", action="store_true", help="decode and report; send and commit nothing")
    parser.add_argument(
        "--group",
        help="prefix of the consumer groups holding the replay's progress, one per stage "
        "(default: <group_id>.replay)",
    )


def run(cfg: Config, args: argparse.Namespace) -> int:
    """Run a replay, one pass per stage; exit 0 when every picked record was accepted or dead-lettered again."""
    from forwarder.runtime import run_app  # noqa: PLC0415 - the runtime is heavy; --dry-run needs none of it

    base = args.group or f"{cfg.kafka.group_id}.replay"
    stages = list(dict.fromkeys(args.stage)) if args.stage else list(STAGES)
    groups = {stage: progress_group(base, stage, args.since) for stage in stages}
    ends: dict[int, int] | None = None
    stage_starts: dict[str, dict[int, int]] = {}
    for stage, group in groups.items():
        ends, stage_starts[stage] = _snapshot(cfg, group, ends)  # one snapshot end for every pass
    assert ends is not None
    if args.dry_run:
        return _dry_run(cfg, ReplaySelection(stages, args.since), ends, stage_starts)
    for stage, group in groups.items():
        starts = stage_starts[stage]
        selection = ReplaySelection([stage], args.since)
        hooks = ReplayHooks(selection, ends, starts, cfg.dead_letter.topic)
        if hooks.total == 0:
            print(
                f"stage {stage}: replay of {cfg.dead_letter.topic}: nothing new since the last replay; "
                "0 accepted by PutEvents; 0 dead-lettered again"
            )
            continue
        replay_cfg = cfg.model_copy(
            update={
                "kafka": cfg.kafka.model_copy(update={"topics": [cfg.dead_letter.topic], "group_id": group}),
                # A replay runs beside the daemon: it must not take the daemon's metrics port.
                "observability": cfg.observability.model_copy(update={"port": None}),
            }
        )
        log.info(
            "replaying stage %s: %d records of %s (group %s)",
            stage,
            hooks.total,
            cfg.dead_letter.topic,
            group,
        )
        metrics = Metrics()
        code = run_app(replay_cfg, metrics, hooks)
        print(f"stage {stage}: {hooks.report(metrics)}")
        if code != 0:
            return code
    return 0
