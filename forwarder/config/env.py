"""The environment overlay: ``FORWARDER__SECTION__KEY`` variables on top of the YAML mapping.

Contract:
- A variable ``FORWARDER__SECTION__KEY`` (``__`` between levels, case-insensitive) sets the value at
  ``section.key``; each part is matched to the schema's own spelling (``USERID`` → ``userId``).
- Inside ``kafka.client`` and ``dead_letter.producer`` the key's ``_`` stand for librdkafka's ``.``
  (``FORWARDER__KAFKA__CLIENT__SASL_PASSWORD`` sets ``sasl.password``), since no librdkafka property has
  an underscore.
- Values starting with ``[`` or ``{`` are parsed as YAML; others stay strings (the schema converts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from forwarder.config.schema import Config

ENV_PREFIX = "FORWARDER__"
PASSTHROUGH_PATHS = {("kafka", "client"), ("dead_letter", "producer")}


def env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], object]]:
    """Each ``FORWARDER__`` variable as (path in the schema's spelling, value), in ``environ``'s order."""
    overrides: list[tuple[list[str], object]] = []
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(parts) >= 3 and tuple(parts[:2]) in PASSTHROUGH_PATHS:
            parts = [*parts[:2], ".".join(parts[2:]).replace("_", ".")]
        value: object = raw
        if raw[:1] in ("[", "{"):
            value = yaml.safe_load(raw)
        overrides.append((_resolve_case(parts), value))
    return overrides


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
