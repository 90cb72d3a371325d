"""Configuration hardening (issue #10): keys whose values would lose messages or leak secrets are refused,
and a secret in the environment is taken as it is, never parsed or quoted back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forwarder.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "kafka": {"bootstrap_servers": "k:9092", "topics": ["t"]},
    "personalize": {"tracking_id": "trk"},
    "dead_letter": {"topic": "dlq"},
}
SECRET = "{s3cret-not-for-logs"


def _with(**sections: dict[str, object]) -> dict[str, object]:
    return {**MINIMAL, **{name: {**MINIMAL.get(name, {}), **value} for name, value in sections.items()}}  # type: ignore[dict-item]


def test_a_dead_letter_topic_that_is_also_consumed_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(kafka={"topics": ["t", "dlq"]}), environ={})
    text = str(info.value)
    assert "dead_letter.topic" in text
    assert "kafka.topics" in text


def test_a_regex_subscription_is_allowed_beside_its_dead_letter_topic() -> None:
    cfg = parse_config(
        _with(kafka={"topics": ["^interactions.*"]}, dead_letter={"topic": "interactions.dead-letter"}),
        environ={},
    )
    assert cfg.kafka.topics == ["^interactions.*"]


@pytest.mark.parametrize(
    "producer",
    [
        {"acks": 0},
        {"acks": "1"},
        {"request.required.acks": 1},
        {"enable.idempotence": False},
        {"enable.idempotence": "false"},
    ],
)
def test_a_weaker_dead_letter_producer_is_refused(producer: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(dead_letter={"producer": producer}), environ={})
    assert "dead_letter.producer" in str(info.value)


@pytest.mark.parametrize(
    "producer", [{"acks": "all"}, {"acks": -1}, {"enable.idempotence": True}, {"linger.ms": 50}]
)
def test_dead_letter_producer_overrides_that_keep_acknowledgements_are_accepted(
    producer: dict[str, object],
) -> None:
    assert (
        parse_config(_with(dead_letter={"producer": producer}), environ={}).dead_letter.producer == producer
    )


@pytest.mark.parametrize("secret", [SECRET, "[abc", "{a: 1}", "[1, 2]"])
def test_a_string_key_takes_an_environment_value_verbatim(secret: str) -> None:
    env = {
        "FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": secret,
        "FORWARDER__PERSONALIZE__TRACKING_ID": secret,
    }
    cfg = parse_config(MINIMAL, environ=env)
    assert cfg.kafka.client["sasl.password"] == secret
    assert cfg.personalize.tracking_id == secret


def test_list_and_mapping_keys_still_take_yaml_from_the_environment() -> None:
    env = {
        "FORWARDER__KAFKA__TOPICS": "[a, b]",
        "FORWARDER__DEAD_LETTER__PRODUCER": "{linger.ms: 7}",
    }
    cfg = parse_config(MINIMAL, environ=env)
    assert cfg.kafka.topics == ["a", "b"]
    assert cfg.dead_letter.producer == {"linger.ms": 7}


def test_invalid_yaml_for_a_structured_key_names_the_variable_not_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL, environ={"FORWARDER__DEAD_LETTER__PRODUCER": "{sasl.password: " + SECRET})
    text = str(info.value)
    assert "FORWARDER__DEAD_LETTER__PRODUCER" in text
    assert "s3cret" not in text


def test_check_config_with_a_brace_secret_neither_fails_nor_prints_it(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith("FORWARDER__")}
    env = {**inherited, "FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": SECRET}
    result = subprocess.run(
        [sys.executable, "-m", "forwarder", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    bad = {
        **env,
        "FORWARDER__KAFKA__CLIENT__SASL_MECHANISM": "{x",
        "FORWARDER__KAFKA__POLL_BATCH_SIZE": SECRET,
    }
    failed = subprocess.run(
        [sys.executable, "-m", "forwarder", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=bad,
        check=False,
    )
    assert failed.returncode == 2
    assert "kafka.poll_batch_size" in failed.stderr
    assert "s3cret" not in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_yaml_error_in_the_file_says_where_without_quoting_the_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  client:\n    sasl.password: {s3cret-in-file\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config, environ={})
    text = str(info.value)
    assert "not valid YAML at line" in text
    assert "s3cret" not in text
