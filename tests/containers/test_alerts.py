"""The alert rules run: ``promtool check rules`` accepts deploy/prometheus/alerts.yaml, and ``promtool test
rules`` passes deploy/prometheus/alerts-test.yaml, which has, for every alert, input series under which it
fires (with its labels and rendered annotations). promtool is the host's where installed, else the one in
the Prometheus image built from Debian's package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.harness import REPO
from tests.harness.containers import podman

RULES = REPO / "deploy" / "prometheus"


def _promtool(*args: str, image: str) -> subprocess.CompletedProcess[str]:
    """promtool ARGS in deploy/prometheus (the host's, else in ``image`` with the folder mounted)."""
    if shutil.which("promtool"):
        return subprocess.run(
            ["promtool", *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
        )
    return podman(
        "run", "--rm", "--network", "none", "-v", f"{RULES}:/rules:ro", "-w", "/rules",
        "--entrypoint", "/usr/bin/promtool", image, *args, check=False,
    )  # fmt: skip


def _alerts(path: Path) -> set[str]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_checks_the_rules(images: dict[str, str]) -> None:
    result = _promtool("check", "rules", "alerts.yaml", image=images["PROMETHEUS_IMAGE"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts(RULES / 'alerts.yaml'))} rules found" in result.stdout


def test_promtool_unit_tests_pass(images: dict[str, str]) -> None:
    result = _promtool("test", "rules", "alerts-test.yaml", image=images["PROMETHEUS_IMAGE"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_seen_firing_by_a_unit_test() -> None:
    tests = yaml.safe_load((RULES / "alerts-test.yaml").read_text(encoding="utf-8"))
    assert tests["rule_files"] == ["alerts.yaml"]
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert firing == _alerts(RULES / "alerts.yaml")
