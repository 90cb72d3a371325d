"""Preflight through the real command against the real broker: a missing input or dead-letter topic stops
the start with one line naming the topic and its key; `dead_letter.create_topic` creates it;
`check-config --connect` runs the same checks without starting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.harness import ForwarderConfig, create_topic, headers_dict, read_topic, unique, wait_for
from tests.harness.pipeline import create_topics, forwarder_command, pipeline

pytestmark = pytest.mark.integration


def _command(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return forwarder_command(*args, "--config", str(config))


def _problem_lines(text: str, topic: str) -> list[str]:
    return [line for line in text.splitlines() if topic in line]


@pytest.mark.parametrize("missing", ["input", "dead-letter"])
def test_a_missing_topic_stops_the_start_with_one_line_naming_it_and_its_key(
    bootstrap: str, tmp_path: Path, missing: str
) -> None:
    topic = unique("pre-in") if missing == "input" else create_topic(bootstrap, unique("pre-in"))
    dlq = unique("pre-dlq") if missing == "dead-letter" else create_topic(bootstrap, unique("pre-dlq"))
    absent, key = (topic, "kafka.topics") if missing == "input" else (dlq, "dead_letter.topic")
    config = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, "http://127.0.0.1:9").write(
        tmp_path / "c.yaml"
    )

    run = _command(config, "run")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = _problem_lines(run.stderr, absent)
    assert len(lines) == 1, run.stderr
    assert key in lines[0]
    assert "does not exist" in lines[0]
    assert absent not in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics, (
        "nothing created"
    )

    check = _command(config, "check-config", "--connect")
    assert check.returncode == 2, check.stdout + check.stderr
    assert len(_problem_lines(check.stderr, absent)) == 1
    assert "OK" not in check.stdout

    offline = _command(config, "check-config")
    assert offline.returncode == 0, "without --connect nothing asks the cluster"


def test_check_config_connect_passes_when_the_topics_exist(bootstrap: str, tmp_path: Path) -> None:
    topic, dlq = create_topics(bootstrap, "pre-ok")
    config = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, "http://127.0.0.1:9").write(
        tmp_path / "c.yaml"
    )
    check = _command(config, "check-config", "--connect")
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout
    assert "checked on the cluster" in check.stdout


def test_create_topic_creates_the_dead_letter_topic_at_start(bootstrap: str, tmp_path: Path) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "pre-create",
        dead_letter=False,
        extra={"dead_letter": {"create_topic": True, "partitions": 2, "replication_factor": 1}},
    )
    dlq, cfg = p.dlq, p.cfg
    p.produce(
        [
            (b"bad", b"not json"),
            (b"ok", json.dumps({"eventId": "e", "sessionId": "s", "eventType": "v"}).encode()),
        ]
    )
    # check-config --connect says it would be created, and creates nothing.
    check = _command(cfg.write(tmp_path / "check.yaml"), "check-config", "--connect")
    assert check.returncode == 0, check.stderr
    assert "creates it" in check.stdout
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert dlq not in admin.list_topics(timeout=10).topics

    with p.run() as replica:
        dead = read_topic_when_present(bootstrap, dlq)
        p.wait_committed()
        assert replica.stop() == 0
    assert [m.value() for m in dead] == [b"not json"]
    assert headers_dict(dead[0])["forwarder.error.stage"] == "decode"
    assert len(admin.list_topics(dlq, timeout=10).topics[dlq].partitions) == 2
    assert f"created the dead-letter topic {dlq}" in replica.log_text()


def read_topic_when_present(bootstrap: str, topic: str) -> list[Any]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wait_for(lambda: topic in admin.list_topics(timeout=5).topics, 60, what=f"{topic} created")
    return read_topic(bootstrap, topic, expect=1, timeout=60)
