"""Configuration: YAML + environment, every problem named by its dotted path, unknown keys refused."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from forwarder.config import ConfigError, load_config, parse_config, redact

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "kafka": {"bootstrap_servers": "k:9092", "topics": ["t"]},
    "personalize": {"tracking_id": "trk"},
    "dead_letter": {"topic": "dlq"},
}


def test_shipped_configs_are_valid() -> None:
    for name in ("forwarder.yaml", "local.yaml"):
        load_config(REPO / "config" / name, environ={})


def test_defaults() -> None:
    cfg = parse_config(MINIMAL, environ={})
    assert cfg.kafka.group_id == "forwarder"
    assert cfg.batching.max_events == 10
    assert cfg.retry.on_exhausted == "dead_letter"


def test_environment_overrides_every_level_and_passthrough_keys() -> None:
    env = {
        "FORWARDER__KAFKA__BOOTSTRAP_SERVERS": "other:9093",
        "FORWARDER__KAFKA__TOPICS": "a, b",
        "FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": "s3cret",
        "FORWARDER__BATCHING__LINGER_MS": "50",
        "FORWARDER__MAPPING__FIELDS__USERID": "user_id",
        "forwarder__retry__on_exhausted": "block",
        "UNRELATED": "x",
    }
    cfg = parse_config(MINIMAL, environ=env)
    assert cfg.kafka.bootstrap_servers == "other:9093"
    assert cfg.kafka.topics == ["a", "b"]
    assert cfg.kafka.client == {"sasl.password": "s3cret"}
    assert cfg.batching.linger_ms == 50
    assert cfg.retry.on_exhausted == "block"


def test_every_problem_is_named_by_its_dotted_path() -> None:
    bad = {
        "kafka": {"topics": [], "bogus": 1, "client": {"group.id": "x"}},
        "personalize": {"tracking_id": "", "transport": "carrier-pigeon"},
        "batching": {"max_events": 11, "linger_ms": -1},
        "dead_letter": {"topic": "d"},
        "extra_section": {},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(bad, environ={"FORWARDER__BACKPRESSURE__MAX_BUFFERED_EVENTS": "lots"})
    text = "\n".join(info.value.problems)
    for path in (
        "kafka.bootstrap_servers",
        "kafka.topics",
        "kafka.bogus: unknown key",
        "kafka.client",
        "personalize.tracking_id",
        "personalize.transport",
        "batching.max_events",
        "batching.linger_ms",
        "backpressure.max_buffered_events",
        "extra_section: unknown key",
    ):
        assert path in text, f"{path} missing from:\n{text}"


def test_unreadable_or_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, environ={})


def test_check_config_command_lists_each_problem_and_exits_non_zero(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "kafka:\n  topics: []\n  typo_key: 1\npersonalize:\n  tracking_id: t\nbatching:\n  max_events: 50\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "forwarder", "check-config", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    for path in (
        "kafka.bootstrap_servers",
        "kafka.topics",
        "kafka.typo_key",
        "batching.max_events",
        "dead_letter",
    ):
        assert path in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "forwarder", "check-config", "--config", str(REPO / "config" / "local.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr


def test_redact_hides_secret_looking_properties() -> None:
    assert redact({"sasl.password": "p", "ssl.key.password": "k", "sasl.username": "u"}) == {
        "sasl.password": "***",
        "ssl.key.password": "***",
        "sasl.username": "u",
    }


def test_the_configuration_reference_is_generated_from_the_schema() -> None:
    from forwarder.config import reference_markdown  # noqa: PLC0415

    written = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == reference_markdown(), "run: python -m forwarder.config > docs/configuration.md"
    for key in ("kafka.bootstrap_servers", "personalize.max_calls_per_second", "mapping.fields.sessionId"):
        assert f"`{key}`" in written


def test_the_memory_bound_is_the_backpressure_section() -> None:
    cfg = parse_config({**MINIMAL, "backpressure": {"max_buffered_events": 500}}, environ={})
    assert cfg.backpressure.max_buffered_events == 500
    env = {"FORWARDER__BACKPRESSURE__MAX_BUFFERED_EVENTS": "700"}
    assert parse_config(MINIMAL, environ=env).backpressure.max_buffered_events == 700


RENAMED = "configuration key `limits` is now `backpressure`"


def test_the_old_limits_section_still_loads_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_config({**MINIMAL, "limits": {"max_buffered_events": 500}}, environ={})
    assert cfg.backpressure.max_buffered_events == 500
    cfg = parse_config(MINIMAL, environ={"FORWARDER__LIMITS__MAX_BUFFERED_EVENTS": "600"})
    assert cfg.backpressure.max_buffered_events == 600
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and RENAMED in r.getMessage()]
    assert len(warnings) == 2


def test_the_new_name_wins_over_the_old_one_key_by_key() -> None:
    data = {
        **MINIMAL,
        "limits": {"max_buffered_events": 500},
        "backpressure": {"max_buffered_events": 900},
    }
    assert parse_config(data, environ={}).backpressure.max_buffered_events == 900
    assert data["limits"] == {"max_buffered_events": 500}, "the caller's mapping is left unchanged"


def test_a_bad_value_under_the_old_name_is_named_by_the_new_path() -> None:
    with pytest.raises(ConfigError, match=r"backpressure\.max_buffered_events"):
        parse_config({**MINIMAL, "limits": {"max_buffered_events": "lots"}}, environ={})


def test_check_config_warns_about_an_old_name(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text((REPO / "config" / "local.yaml").read_text() + "\nlimits:\n  max_buffered_events: 500\n")
    result = subprocess.run(
        [sys.executable, "-m", "forwarder", "check-config", "--config", str(old)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert RENAMED in result.stderr
