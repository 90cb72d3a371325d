"""Security basics: secrets never reach logs, SASL/TLS settings pass through to librdkafka unchanged (a real
SASL/PLAIN listener), and the emulator binds loopback unless told otherwise."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from forwarder.config import parse_config, redact
from forwarder.consume import consumer_config
from tests.conftest import Broker
from tests.harness import start_emulator, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration

AWS_SECRET = "aws-secret-KNOWN-4f1d2c9e"
SASL_PASSWORD = "forwarder-secret"  # the script's listener accepts this one (KAFKA_SASL_PASSWORD)
WRONG_PASSWORD = "wrong-password-KNOWN-77aa"
SASL_CLIENT = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "PLAIN",
    "sasl.username": "forwarder",
}


def _sasl_bootstrap(broker: Broker) -> str:
    if broker.script_env is None or not broker.script_env.get("KAFKA_SASL_PORT"):
        pytest.skip("needs the script-run broker with its SASL/PLAIN listener")
    return f"127.0.0.1:{broker.script_env['KAFKA_SASL_PORT']}"


def _events(n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (
            b"k",
            json.dumps(
                {"eventId": f"e{i}", "sessionId": f"s{i % 3}", "eventType": "view", "sentAt": 1714566896}
            ).encode(),
        )
        for i in range(n)
    ]


def test_sasl_plain_passes_through_and_no_secret_is_logged(broker: Broker, tmp_path: Path) -> None:
    sasl = _sasl_bootstrap(broker)
    # The emulator throttles and fails some calls so that error paths log too; an unknown tracking id
    # would also log, so the allow-list includes ours.
    p = pipeline(
        broker.bootstrap,
        tmp_path,
        "sasl",
        emulator_args=("--throttle-rate", "0.3", "--error-rate", "0.2", "--seed", "5"),
        extra={"logging": {"level": "DEBUG"}, "retry": {"max_attempts": 30}},
    )
    p.cfg.bootstrap, p.cfg.client = sasl, SASL_CLIENT  # the replica over SASL; the test's side plain
    p.produce([*_events(30), (b"bad", b"not json")])
    env = {"FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": SASL_PASSWORD, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    with p.run(env=env) as replica:
        wait_for(lambda: len(p.emulator.events()) >= 30, 60, what="events over SASL")
        p.wait_committed(30)
        assert replica.stop() == 0
    log = replica.log_text()
    assert "dead-lettering" in log, "the error paths ran"
    for secret in (AWS_SECRET, SASL_PASSWORD):
        assert secret not in log, "a secret reached the log"


def test_a_wrong_sasl_password_is_reported_without_the_password(broker: Broker, tmp_path: Path) -> None:
    sasl = _sasl_bootstrap(broker)
    p = pipeline(
        broker.bootstrap, tmp_path, "sasl-wrong", dead_letter=False, extra={"logging": {"level": "DEBUG"}}
    )
    p.cfg.bootstrap, p.cfg.client = sasl, SASL_CLIENT
    with p.run(env={"FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": WRONG_PASSWORD}) as replica:
        wait_for(
            lambda: re.search("authenticat", replica.log_text(), re.I) is not None, 30, what="auth error"
        )
        time.sleep(1)
        replica.stop()
    assert WRONG_PASSWORD not in replica.log_text()


def test_check_config_and_startup_logs_redact_secrets() -> None:
    env = {
        "FORWARDER__KAFKA__CLIENT__SASL_PASSWORD": SASL_PASSWORD,
        "FORWARDER__KAFKA__CLIENT__SSL_KEY_PASSWORD": "k",
    }
    cfg = parse_config(
        {
            "kafka": {
                "bootstrap_servers": "b:9092",
                "topics": ["t"],
                "client": {"ssl.ca.location": "/ca.pem"},
            },
            "personalize": {"tracking_id": "t"},
            "dead_letter": {"topic": "d"},
        },
        environ=env,
    )
    conf = consumer_config(cfg.kafka)
    assert conf["sasl.password"] == SASL_PASSWORD, "passed to librdkafka unchanged"
    assert conf["ssl.ca.location"] == "/ca.pem"
    shown = json.dumps(redact(conf))
    assert SASL_PASSWORD not in shown
    assert "/ca.pem" in shown


def test_the_emulator_binds_loopback_by_default(tmp_path: Path) -> None:
    emulator = start_emulator(tmp_path)
    try:
        assert emulator.url.startswith("http://127.0.0.1:")
    finally:
        emulator.stop()
