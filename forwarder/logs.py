"""Logging helpers: JSON lines for ``logging.format: json``, credentials redacted from every line, and
librdkafka's messages routed through Python logging with repeats dropped."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson

from forwarder.redaction import redact

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra fields}``; exceptions under ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON object."""
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter: the finished line (message, extra fields, traceback) goes through
    :func:`forwarder.redaction.redact`, so no credential a service or an exception quoted is logged."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line, redacted."""
        return redact(self._inner.format(record))


class RepeatFilter(logging.Filter):
    """Drops a record whose text was already let through within ``window_s``: a broker that is down
    makes librdkafka report the same failure many times a second."""

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self._window = window_s
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to emit the record."""
        text = record.getMessage()
        now = time.monotonic()
        last = self._seen.get(text)
        if last is not None and now - last < self._window:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[text] = now
        return True


def kafka_logger() -> logging.Logger:
    """The logger librdkafka's own messages go to (instead of raw lines on stderr), repeats dropped."""
    logger = logging.getLogger("forwarder.kafka")
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger
