"""The preflight's verdict on what the broker's authorizer grants (a cluster with ACLs is not available to
the tests: the local broker runs without an authorizer, which the integration tests cover)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from confluent_kafka.admin._acl import AclOperation

from forwarder.preflight import _not_writable


class _Description:
    def __init__(self, granted: list[AclOperation] | None) -> None:
        self.authorized_operations = granted


class _Admin:
    """Answers describe_topics with the operations given; nothing else is called."""

    def __init__(self, granted: list[AclOperation] | None) -> None:
        self._granted = granted

    def describe_topics(self, topics: Any, **_: Any) -> dict[str, Future[_Description]]:
        future: Future[_Description] = Future()
        future.set_result(_Description(self._granted))
        return {"dlq": future}


def test_a_topic_this_client_may_not_write_is_named_with_what_it_may_do() -> None:
    problem = _not_writable(_Admin([AclOperation.READ, AclOperation.DESCRIBE]), "dlq", 1.0)  # type: ignore[arg-type]
    assert problem is not None
    assert "may not write to topic dlq" in problem
    assert "DESCRIBE" in problem


def test_write_all_or_no_authorizer_is_fine() -> None:
    for granted in ([AclOperation.WRITE], [AclOperation.ALL], None):
        assert _not_writable(_Admin(granted), "dlq", 1.0) is None  # type: ignore[arg-type]
