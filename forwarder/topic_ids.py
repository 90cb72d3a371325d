"""Topic ids: the UUID Kafka assigns to each topic when it is created, through the Admin API.

A topic deleted and created again under the same name, or a topic of another cluster, has another id;
the forwarder puts it into the event ids it derives (:func:`forwarder.decode.event_id_prefix`), so those
ids differ across incarnations of a topic while a redelivered message keeps its id.

Contract of :func:`lookup_topic_ids`: the ids of the topics it could describe, by name; a topic it could not
(missing, not authorized, broker unreachable within ``timeout``) is left out and named in the second result.
The calls block: run them off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from forwarder.config import KafkaConfig
from forwarder.logs import kafka_logger


def admin_client(cfg: KafkaConfig, error_cb: Callable[[KafkaError], None] | None = None) -> AdminClient:
    """An Admin client with the consumer's connection settings (TLS, SASL...); ``error_cb`` is served by
    its ``poll``."""
    conf: dict[str, Any] = {**cfg.client, "bootstrap.servers": cfg.bootstrap_servers}
    conf.pop("group.instance.id", None)
    if error_cb is not None:
        conf["error_cb"] = error_cb
    return AdminClient(conf, logger=kafka_logger())


def lookup_topic_ids(
    admin: AdminClient, topics: Iterable[str], timeout: float = 10.0
) -> tuple[dict[str, str], dict[str, str]]:
    """(topic → id, topic → why it could not be described) for ``topics``."""
    names = sorted(set(topics))
    if not names:
        return {}, {}
    ids: dict[str, str] = {}
    problems: dict[str, str] = {}
    futures = admin.describe_topics(TopicCollection(names), request_timeout=timeout)
    for name, future in futures.items():
        try:
            description = future.result(timeout + 5)
        except KafkaException as exc:
            problems[name] = exc.args[0].str() if exc.args else str(exc)
            continue
        except Exception as exc:  # a timeout of the future itself, or the client closing
            problems[name] = f"{type(exc).__name__}: {exc}"
            continue
        ids[name] = str(description.topic_id)
    return ids, problems
