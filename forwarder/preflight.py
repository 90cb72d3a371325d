"""Preflight: before the daemon starts, check that what the configuration names exists on the cluster.

Checked, through the Admin API: a broker answers (credentials it refuses stop the wait at once); every input topic named outright (not a ``^regex``)
exists; the dead-letter topic exists, or is created when ``dead_letter.create_topic`` is true (with
``dead_letter.partitions`` and ``dead_letter.replication_factor``, an existing one left as it is, as
Kafka Connect does with its dead-letter topic); and this client may write to it (the operations the
broker's authorizer grants, where one is configured). Without this a missing dead-letter topic was found
only at the first bad message, whose partition then stalled.

Contract of :func:`preflight`: returns what it did (one line each), or raises :class:`PreflightError`
whose ``problems`` are one line each naming the topic and the configuration key, and whose ``exit_code``
is 2 for a topic that is missing or not writable, or credentials refused (fix the configuration or the
cluster), and 1 when no broker answered. It blocks; it runs before the event loop.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclOperation
from confluent_kafka.cimpl import NewTopic

from forwarder.config import Config
from forwarder.topic_ids import admin_client

TIMEOUT_S = 30.0


class PreflightError(Exception):
    """The cluster does not hold what the configuration names; one line per problem."""

    def __init__(self, problems: list[str], exit_code: int) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.exit_code = exit_code


def _exists(admin: AdminClient, topic: str, timeout: float) -> str | None:
    """None if the topic exists, else why not."""
    md = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None:
        return "does not exist"
    if md.error is not None:
        if md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return "does not exist"
        return md.error.str()
    return None


def preflight(cfg: Config, create: bool = True, timeout: float = TIMEOUT_S) -> list[str]:
    """Check the topics (creating the dead-letter topic if configured and ``create``); see the module."""
    errors: list[KafkaError] = []
    try:
        admin = admin_client(cfg.kafka, error_cb=errors.append)
    except KafkaException as exc:  # librdkafka refused the properties themselves
        raise PreflightError([f"kafka.client: {exc.args[0].str()}"], 2) from None
    servers = cfg.kafka.bootstrap_servers
    _connect(admin, servers, errors, timeout)
    done: list[str] = []
    problems: list[str] = []
    routed = [(f"routes[{i}].topics", t) for i, route in enumerate(cfg.routes) for t in route.topics]
    for where, topic in [*(("kafka.topics", t) for t in cfg.kafka.topics), *routed]:
        if topic.startswith("^"):
            continue  # a regex subscription: whatever matches, now or later
        why = _exists(admin, topic, timeout)
        if why is not None:
            problems.append(f"{where}: topic {topic} {why} on {servers}")
    dl = cfg.dead_letter
    why = _exists(admin, dl.topic, timeout)
    if why == "does not exist" and dl.create_topic:
        if create:
            done.append(_create(admin, cfg, timeout))
            why = _exists(admin, dl.topic, timeout)
        else:
            done.append(
                f"dead_letter.topic: topic {dl.topic} does not exist; `forwarder run` creates it "
                f"(dead_letter.create_topic: {dl.partitions} partitions, replication factor "
                f"{dl.replication_factor if dl.replication_factor > 0 else 'the broker default'})"
            )
            why = "absent"
    if why == "does not exist":
        problems.append(
            f"dead_letter.topic: topic {dl.topic} does not exist on {servers}; create it, or set "
            "dead_letter.create_topic: true"
        )
    elif why is not None and why != "absent":
        problems.append(f"dead_letter.topic: topic {dl.topic}: {why}")
    elif why is None:
        not_writable = _not_writable(admin, dl.topic, timeout)
        if not_writable:
            problems.append(f"dead_letter.topic: {not_writable}")
    if problems:
        raise PreflightError(problems, 2)
    return done


def _connect(admin: AdminClient, servers: str, errors: list[KafkaError], timeout: float) -> None:
    """Wait until a broker answers a metadata request; credentials it refuses end the wait at once."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            last = exc.args[0].str()
        admin.poll(0)  # serves error_cb: why the connections fail
        refused = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if refused:
            raise PreflightError(
                [
                    f"kafka.client: the brokers of {servers} refused this client's credentials ({refused[-1].str()})"
                ],
                2,
            )
        if time.monotonic() >= deadline:
            why = errors[-1].str() if errors else last
            raise PreflightError(
                [f"kafka.bootstrap_servers: no broker of {servers} answered within {timeout:.0f}s ({why})"], 1
            )


def _create(admin: AdminClient, cfg: Config, timeout: float) -> str:
    dl = cfg.dead_letter
    new = NewTopic(dl.topic, num_partitions=dl.partitions, replication_factor=dl.replication_factor)
    try:
        admin.create_topics([new], request_timeout=timeout)[dl.topic].result(timeout + 5)
    except KafkaException as exc:
        err = exc.args[0]
        if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another replica was first: fine
            raise PreflightError(
                [
                    f"dead_letter.topic: cannot create topic {dl.topic} (dead_letter.create_topic): {err.str()}"
                ],
                2,
            ) from None
        return f"dead-letter topic {dl.topic} was created meanwhile by another client"
    return f"created the dead-letter topic {dl.topic} ({dl.partitions} partitions, dead_letter.create_topic)"


def _not_writable(admin: AdminClient, topic: str, timeout: float) -> str | None:
    """Why this client may not write to ``topic`` by the broker's ACLs, or None (also when no authorizer)."""
    try:
        description = admin.describe_topics(
            TopicCollection([topic]), include_authorized_operations=True, request_timeout=timeout
        )[topic].result(timeout + 5)
    except KafkaException as exc:
        return f"cannot describe topic {topic}: {exc.args[0].str()}"
    granted = description.authorized_operations
    if granted is None:
        return None  # the broker has no authorizer: anyone may write
    if AclOperation.WRITE in granted or AclOperation.ALL in granted:
        return None
    names = ", ".join(sorted(op.name for op in granted)) or "nothing"
    return f"this client may not write to topic {topic} (the broker's ACLs grant {names})"
