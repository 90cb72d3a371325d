"""The consumer's librdkafka properties: failover-sized session defaults (issue #17) and static membership ids."""

from __future__ import annotations

import socket

import pytest

from forwarder.config import KafkaConfig
from forwarder.consume import (
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    consumer_config,
    expand_instance_id,
)


def _cfg(**kw: object) -> KafkaConfig:
    return KafkaConfig.model_validate({"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], **kw})


def test_classic_gets_a_session_that_fails_over_within_ten_seconds() -> None:
    conf = consumer_config(_cfg())
    assert conf["session.timeout.ms"] == DEFAULT_SESSION_TIMEOUT_MS
    assert conf["heartbeat.interval.ms"] == DEFAULT_HEARTBEAT_INTERVAL_MS
    # 6 s is the lowest a default broker accepts (group.min.session.timeout.ms); ≤ 10 s for failover
    assert 6000 <= conf["session.timeout.ms"] <= 10_000
    assert conf["heartbeat.interval.ms"] * 3 <= conf["session.timeout.ms"]
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert conf["enable.auto.commit"] is False
    assert "group.instance.id" not in conf


def test_the_users_session_settings_win() -> None:
    conf = consumer_config(_cfg(client={"session.timeout.ms": 45000, "heartbeat.interval.ms": 3000}))
    assert conf["session.timeout.ms"] == 45000
    assert conf["heartbeat.interval.ms"] == 3000


def test_kip848_leaves_the_session_to_the_broker() -> None:
    conf = consumer_config(_cfg(group_protocol="consumer"))
    assert conf["group.protocol"] == "consumer"
    for classic_only in ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"):
        assert classic_only not in conf


def test_a_group_instance_id_template_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "forwarder-2")
    conf = consumer_config(_cfg(client={"group.instance.id": "${POD_NAME}"}))
    assert conf["group.instance.id"] == "forwarder-2"
    conf = consumer_config(_cfg(group_protocol="consumer", client={"group.instance.id": "fw-{hostname}"}))
    assert conf["group.instance.id"] == f"fw-{socket.gethostname()}"


def test_the_named_key_wins_over_the_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    # kafka.group_instance_id is to be added to the schema; consumer_config already reads it.
    monkeypatch.setenv("HOSTNAME", "node-a")
    cfg = _cfg(client={"group.instance.id": "other"}).model_copy(update={"group_instance_id": "${HOSTNAME}"})
    assert consumer_config(cfg)["group.instance.id"] == "node-a"


def test_expand_instance_id() -> None:
    env = {"POD_NAME": "fw-0", "NS": "prod", "EMPTY": ""}
    assert expand_instance_id("${NS}/${POD_NAME}", env) == "prod/fw-0"
    assert expand_instance_id("fixed-id", env) == "fixed-id"
    assert expand_instance_id("{hostname}", env) == socket.gethostname()
    assert expand_instance_id("$NS {other}", env) == "$NS {other}", "only ${VAR} and {hostname} are templates"
    with pytest.raises(ValueError, match="POD_NAME"):
        expand_instance_id("${POD_NAME}", {})
    with pytest.raises(ValueError, match="EMPTY"):
        expand_instance_id("x-${EMPTY}", env)
    with pytest.raises(ValueError, match="empty"):
        expand_instance_id("  ", env)
