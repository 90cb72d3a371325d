"""Helpers shared by the integration tests: real processes (emulator, forwarder replicas), topics,
producing and reading. Every process started here is stopped by its pid; every wait is bounded."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

REPO = Path(__file__).resolve().parent.parent
# Every process the helpers below start; tests/conftest.py stops whatever is still alive after each test,
# so a test that fails half way leaves nothing running.
STARTED: list[subprocess.Popen[Any]] = []


def wait_for(
    condition: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal a process by its pid and wait; kill it if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def kafka_script(command: str, env: dict[str, str]) -> str:
    """Run ``scripts/kafka-local COMMAND`` with ``env``; its stdout, or an error with its stderr's tail."""
    result = subprocess.run(
        [str(REPO / "scripts" / "kafka-local"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-local {command} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, float]:
    """A replica's /metrics as {"name{labels}": value} (comments dropped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def probe(port: int, path: str) -> int:
    """The HTTP status of a probe endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    """Create a topic and wait until its metadata shows every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(30)

    def ready() -> bool:
        md = admin.list_topics(name, timeout=5).topics.get(name)
        return md is not None and md.error is None and len(md.partitions) == partitions

    wait_for(ready, 30, what=f"topic {name}")
    return name


def delete_topic(bootstrap: str, name: str) -> None:
    """Delete a topic and wait until it is gone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([name])[name].result(30)
    wait_for(lambda: name not in admin.list_topics(timeout=5).topics, 30, what=f"{name} deleted")


Record = (
    tuple[bytes | None, bytes | None]
    | tuple[bytes | None, bytes | None, int]
    | tuple[bytes | None, bytes | None, int, list[tuple[str, str | bytes | None]]]
)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> int:
    """Produce (key, value[, partition[, headers]]) records, wait for every acknowledgement; return the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for record in records:
        kwargs: dict[str, Any] = {"key": record[0], "value": record[1], "on_delivery": delivered}
        if len(record) >= 3:
            kwargs["partition"] = record[2]
        own_headers = record[3] if len(record) == 4 else None
        if own_headers or headers:
            kwargs["headers"] = own_headers or headers
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records not acknowledged"
    assert not failures, failures[:3]
    return count


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 30) -> list[Any]:
    """Read a topic from the start, without a group commit: until ``expect`` messages, or until idle."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            got = [m for m in batch if m.error() is None]
            messages += got
            if got:
                idle_since = time.monotonic()
            if expect is not None and len(messages) >= expect:
                break
            if expect is None and time.monotonic() - idle_since > 2.0:
                break
        return messages
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of a topic (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in md.partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def fully_committed(bootstrap: str, group: str, topic: str) -> bool:
    """Whether the group committed every partition to its end (an empty partition needs no commit)."""
    ends = end_offsets(bootstrap, topic)
    done = committed(bootstrap, group, topic)
    return all(max(done.get(p, 0), 0) == end for p, end in ends.items())


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The high watermark of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
        }
    finally:
        consumer.close()


def headers_dict(message: Any) -> dict[str, str]:
    """A message's headers as text."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (message.headers() or [])}


@dataclass
class EmulatorProcess:
    """A running ``forwarder emulator``."""

    proc: subprocess.Popen[str]
    url: str
    record: Path

    def stats(self) -> dict[str, Any]:
        """The emulator's counters."""
        with urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change fault settings while it runs."""
        request = urllib.request.Request(
            f"{self.url}/_emulator/faults",
            data=json.dumps(faults).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def calls(self, operation: str = "PutEvents") -> list[dict[str, Any]]:
        """Every accepted call of ``operation``, as recorded, without the record's ``operation`` field."""
        if not self.record.exists():
            return []
        with self.record.open(encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.endswith("\n")]
        return [line for line in lines if line.pop("operation") == operation]

    def events(self) -> list[dict[str, Any]]:
        """Every accepted event, with its call's userId/sessionId/trackingId merged in."""
        out = []
        for call in self.calls():
            for ev in call["eventList"]:
                out.append(
                    {
                        **ev,
                        "_trackingId": call["trackingId"],
                        "_sessionId": call["sessionId"],
                        "_userId": call.get("userId"),
                    }
                )
        return out

    def stop(self) -> int:
        """SIGTERM by pid and wait."""
        return stop_process(self.proc)


def start_emulator(tmp_path: Path, *args: str) -> EmulatorProcess:
    """Start the emulator on a free loopback port and wait for its listening line."""
    record = tmp_path / f"{unique('record')}.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "emulator", "--port", "0", "--record", str(record), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    STARTED.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return EmulatorProcess(proc, match.group(1), record)
        if proc.poll() is not None:
            break
    stop_process(proc)
    raise AssertionError(f"emulator did not start: {line!r}")


@dataclass
class ForwarderProcess:
    """A running ``forwarder run`` replica."""

    proc: subprocess.Popen[bytes]
    log: Path
    config: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal by pid and wait."""
        return stop_process(self.proc, sig, timeout)

    def log_text(self) -> str:
        """Everything the replica logged."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class ForwarderConfig:
    """A configuration for a test replica; ``write`` turns it into YAML."""

    bootstrap: str
    topics: list[str]
    group: str
    dead_letter: str
    endpoint: str
    tracking_id: str = "tracking-test"
    extra: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(
        default_factory=lambda: {"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
    )

    def data(self) -> dict[str, Any]:
        """The configuration as a mapping."""
        data: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "topics": self.topics,
                "group_id": self.group,
                "commit_interval_ms": 200,
                "client": self.client,
            },
            "personalize": {
                "tracking_id": self.tracking_id,
                "region": "us-east-1",
                "endpoint_url": self.endpoint,
                "request_timeout_s": 5,
            },
            "batching": {"max_events": 10, "linger_ms": 100},
            "retry": {"initial_backoff_ms": 20, "max_backoff_ms": 500, "max_attempts": 10},
            "dead_letter": {"topic": self.dead_letter},
            "shutdown": {"timeout_s": 20},
            "observability": {"port": None},
            "logging": {"level": "INFO"},
        }
        return _merge(data, self.extra)

    def config_path(self, directory: Path, name: str = "replica") -> Path:
        """Where :func:`start_forwarder` wrote this configuration (written again here)."""
        return self.write(directory / f"{name}.yaml")

    def write(self, path: Path) -> Path:
        """Write the YAML file."""
        path.write_text(yaml.safe_dump(self.data()), encoding="utf-8")
        return path


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDTESTFORWARDER",
    "AWS_SECRET_ACCESS_KEY": "test-secret-not-real",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start_forwarder(
    tmp_path: Path, cfg: ForwarderConfig, name: str = "replica", env: dict[str, str] | None = None
) -> ForwarderProcess:
    """Start ``forwarder run`` as a real process with test credentials; its log goes to a file."""
    config = cfg.write(tmp_path / f"{name}.yaml")
    log = tmp_path / f"{name}.log"
    full_env = {**os.environ, **AWS_TEST_ENV, **(env or {})}
    full_env.pop("AWS_PROFILE", None)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forwarder", "run", "--config", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=full_env,
        )
    STARTED.append(proc)
    return ForwarderProcess(proc, log, config)


@contextlib.contextmanager
def running(processes: list[Any]) -> Iterator[None]:
    """Stop every process in the list (by pid) when the block ends, whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(Exception):
                process.stop()


def kafka_error_code(exc: KafkaException) -> int:
    """The librdkafka error code inside a KafkaException."""
    code: int = exc.args[0].code()
    return code


def request_of(event: Any) -> dict[str, Any]:
    """The PutEvents request that sends one decoded :class:`~forwarder.decode.Event` alone."""
    body: dict[str, Any] = {
        "trackingId": event.key.tracking_id,
        "sessionId": event.key.session_id,
        "eventList": [event.wire],
    }
    if event.key.user_id is not None:
        body["userId"] = event.key.user_id
    return body
