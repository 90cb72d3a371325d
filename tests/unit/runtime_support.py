"""What the runtime unit tests share: a configuration for the in-memory harness and message values."""

from __future__ import annotations

from typing import Any

import orjson

from forwarder.config import Config, parse_config

TOPIC = "events"


def runtime_config(**sections: dict[str, Any]) -> Config:
    """A configuration for :class:`forwarder.runtime.testing.Harness`: short linger, frequent commits,
    a short shutdown; ``sections`` override whole keys of a section."""
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": "127.0.0.1:1",
            "topics": [TOPIC],
            "group_id": "g",
            "commit_interval_ms": 10,
        },
        "personalize": {"tracking_id": "trk"},
        "dead_letter": {"topic": "dlq"},
        "batching": {"linger_ms": 1},
        "retry": {"initial_backoff_ms": 1, "max_backoff_ms": 2, "max_attempts": 2},
        "shutdown": {"timeout_s": 2.0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data, environ={})


def event(session: str, n: int = 0) -> bytes:
    """A valid interaction event of ``session``."""
    return orjson.dumps(
        {
            "sessionId": session,
            "userId": "u",
            "eventType": "click",
            "sentAt": 1714566896,
            "eventId": f"{session}-{n}",
        }
    )


BAD = b"not json"
