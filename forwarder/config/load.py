"""Loading: YAML, then the environment overlay, then the schema's validation.

Contract: :func:`load_config` and :func:`parse_config` return a validated :class:`Config` or raise
:class:`ConfigError`, whose ``problems`` list names every bad key by its dotted path
(``kafka.topics: ...``); unknown keys are reported as ``unknown key``. Secrets (SASL passwords, keys)
belong in the environment, not in the file; AWS credentials come from boto3's default chain and never
appear here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from forwarder.config.env import apply_overrides
from forwarder.config.schema import Config


class ConfigError(Exception):
    """The configuration is not usable; ``problems`` holds one line per bad key, by dotted path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(data: object, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a mapping (already read from YAML) with environment overrides applied on top.

    ``environ`` defaults to the process environment; pass ``{}`` to ignore it.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(data).__name__}"])
    merged = apply_overrides(data, os.environ if environ is None else environ)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _location(err["loc"]) or "(top level)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{where}: {message}")
        raise ConfigError(problems) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge with the environment, and validate a YAML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(data, environ)
