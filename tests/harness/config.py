"""Forwarder configurations for the tests and the bench, written as YAML files.

:class:`ForwarderConfig` is the tests' replica: short timeouts and intervals so that failures show fast.
:func:`forwarder_config` is the bench's: defaults everywhere except what a benchmark must set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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


def forwarder_config(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    endpoint: str,
    transport: str,
    concurrency: int,
    linger_ms: int,
    dead_letter: str,
    tracking_id: str,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write the forwarder's YAML: defaults everywhere except what a benchmark must set, then
    ``overrides`` (dotted path → value, e.g. ``{"backpressure.max_buffered_events": 5000}``)."""
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": group},
        "personalize": {
            "tracking_id": tracking_id,
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "transport": transport,
            "max_in_flight": concurrency,
        },
        "batching": {"max_events": 10, "linger_ms": linger_ms},
        "dead_letter": {"topic": dead_letter},
        "shutdown": {"timeout_s": 5},
        "observability": {"port": None},
        "logging": {"level": "INFO"},
    }
    for dotted, value in (overrides or {}).items():
        section, _, rest = dotted.partition(".")
        node = data.setdefault(section, {})
        if section == "kafka" and rest.startswith("client."):  # librdkafka names hold dots
            node.setdefault("client", {})[rest[len("client.") :]] = value
            continue
        *parents, leaf = rest.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
