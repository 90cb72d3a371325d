"""Loading: YAML, then the environment overlay, then the schema's validation.

Contract: :func:`load_config` and :func:`parse_config` return a validated :class:`Config` or raise
:class:`ConfigError`, whose ``problems`` list names every bad key by its dotted path
(``kafka.topics: ...``); unknown keys are reported as ``unknown key``. Secrets (SASL passwords, keys)
belong in the environment, not in the file; AWS credentials come from boto3's default chain and never
appear here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forwarder.config.env import EnvError, apply_overrides
from forwarder.config.schema import RENAMED_KEYS, Config

log = logging.getLogger(__name__)


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


def renamed_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every old key of :data:`RENAMED_KEYS` moved to its new name, and a
    warning logged for each (before logging is set up, Python prints it on stderr). When both names
    are set, the new one wins key by key."""
    out = dict(data)
    for old, new in RENAMED_KEYS.items():
        old_path, new_path = old.split("."), new.split(".")
        old_parent = _node(out, old_path[:-1])
        if old_parent is None or old_path[-1] not in old_parent:
            continue
        log.warning("configuration key `%s` is now `%s`; the old name still loads but will go", old, new)
        value = old_parent.pop(old_path[-1])
        new_parent = _node(out, new_path[:-1], create=True)
        assert new_parent is not None  # created where missing
        current = new_parent.get(new_path[-1])
        if isinstance(value, dict) and isinstance(current, dict):
            value = {**value, **current}
        elif current is not None:
            value = current
        new_parent[new_path[-1]] = value
    return out


def _node(data: dict[str, Any], path: list[str], create: bool = False) -> dict[str, Any] | None:
    """The mapping at ``path`` (copied on the way, so the caller's input is never changed)."""
    node = data
    for part in path:
        child = node.get(part)
        if not isinstance(child, dict):
            if not create:
                return None
            child = {}
        node[part] = child = dict(child)
        node = child
    return node


def parse_config(data: object, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a mapping (already read from YAML) with environment overrides applied on top.

    ``environ`` defaults to the process environment; pass ``{}`` to ignore it.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(data).__name__}"])
    try:
        merged = renamed_keys(apply_overrides(data, os.environ if environ is None else environ))
    except EnvError as exc:
        raise ConfigError(exc.problems) from None
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
        # Where and what, not YAML's quote of the line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError([f"{path}: not valid YAML{where}: {problem}"]) from None
    return parse_config(data, environ)
