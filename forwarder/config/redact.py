"""Redaction: librdkafka properties made safe to log."""

from __future__ import annotations

from collections.abc import Mapping

SECRET_MARKERS = ("password", "secret", "token", "key")


def redact(props: Mapping[str, object]) -> dict[str, object]:
    """A copy of librdkafka properties safe to log: secret-looking values replaced by ``***``."""
    return {k: ("***" if any(m in k.lower() for m in SECRET_MARKERS) else v) for k, v in props.items()}
