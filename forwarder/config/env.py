"""The environment overlay: ``FORWARDER__SECTION__KEY`` variables on top of the YAML mapping.

Contract:
- A variable ``FORWARDER__SECTION__KEY`` (``__`` between levels, case-insensitive) sets the value at
  ``section.key``; each part is matched to the schema's own spelling (``USERID`` → ``userId``).
- Inside ``kafka.client`` and ``dead_letter.producer`` the key's ``_`` stand for librdkafka's ``.``
  (``FORWARDER__KAFKA__CLIENT__SASL_PASSWORD`` sets ``sasl.password``), since no librdkafka property has
  an underscore.
- A value starting with ``[`` or ``{`` is parsed as YAML only for a list or mapping key (``kafka.topics``);
  a string key (a password) takes the value verbatim; others stay strings (the schema converts them).
- A list or mapping value that is not valid YAML is reported by its variable's name, never quoted
  (:class:`EnvError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from forwarder.config.schema import Config

ENV_PREFIX = "FORWARDER__"
PASSTHROUGH_PATHS = {("kafka", "client"), ("dead_letter", "producer")}


class EnvError(ValueError):
    """Variables whose values cannot be read; ``problems`` name each variable, never its value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], object]]:
    """Each ``FORWARDER__`` variable as (path in the schema's spelling, value), in ``environ``'s order."""
    overrides: list[tuple[list[str], object]] = []
    problems: list[str] = []
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(parts) >= 3 and tuple(parts[:2]) in PASSTHROUGH_PATHS:
            parts = [*parts[:2], ".".join(parts[2:]).replace("_", ".")]
        value: object = raw
        if raw[:1] in ("[", "{") and _is_structured(parts):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                # YAML's message quotes the text, which may be a secret: name the variable only.
                problems.append(f"{name}: not valid YAML (the value is not shown)")
                continue
        overrides.append((_resolve_case(parts), value))
    if problems:
        raise EnvError(problems)
    return overrides


def _is_structured(parts: list[str]) -> bool:
    """Whether the key at ``parts`` holds a list or a mapping (so its environment value is YAML)."""
    model: Any = Config
    annotation: Any = None
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if not fields:
            return False  # inside a pass-through map: a librdkafka property, a scalar
        name = next((f for f in fields if f.lower() == part), None)
        if name is None:
            return False  # unknown key: reported by validation, verbatim
        annotation = fields[name].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation) in (list, dict) or (isinstance(annotation, type) and model is not None)


def apply_overrides(data: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``data`` with every override of ``environ`` applied (the input is left unchanged)."""
    merged: dict[str, Any] = dict(data)
    for path, value in env_overrides(environ):
        _apply(merged, path, value)
    return merged


def _apply(data: dict[str, Any], path: list[str], value: object) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _resolve_case(parts: list[str]) -> list[str]:
    """Environment names are case-insensitive; map each part onto the schema's own spelling (userId)."""
    model: Any = Config
    out: list[str] = []
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if not fields:
            out.append(part)
            model = None
            continue
        name = next((f for f in fields if f.lower() == part), part)
        out.append(name)
        annotation = fields[name].annotation if name in fields else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return out
