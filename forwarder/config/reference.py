"""The configuration reference (docs/configuration.md), generated from the schema so it cannot drift.

Contract: :func:`reference_markdown` is a pure function of :class:`Config`; a test compares its output
with the committed file, and ``python -m forwarder.config`` prints it.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from forwarder.config.env import ENV_PREFIX
from forwarder.config.schema import RENAMED_KEYS, Config


def _type_name(annotation: Any) -> str:
    """A short human name for a field's type: ``list of str``, ``int or null``, ```a`, `b```."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        if _type_name(args[1]) == "str":  # a route's renames; the others are librdkafka's or formats
            return "mapping of str to str"
        return "mapping (librdkafka properties)"
    return getattr(annotation, "__name__", str(annotation))


def reference_markdown() -> str:
    """docs/configuration.md: every key, its type, default, environment variable and meaning.

    Generated from the schema itself (``python -m forwarder.config``), so the reference cannot drift.
    """
    lines = [
        "# Configuration reference",
        "",
        "Generated from `forwarder/config/schema.py` by `python -m forwarder.config > docs/configuration.md`;",
        "a test fails when this file and the schema disagree. Every key can be set in the YAML file or in",
        "the environment (`FORWARDER__SECTION__KEY`, case-insensitive; inside `kafka.client` and",
        "`dead_letter.producer`, `_` stands for librdkafka's `.`). Unknown keys are errors.",
        "`forwarder check-config --config FILE` checks a file and names each problem by its dotted path.",
        "",
    ]

    def walk(model: type[BaseModel], prefix: str) -> None:
        rows: list[str] = []
        nested: list[tuple[type[BaseModel], str]] = []
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((annotation, f"{path}."))
                continue
            item = get_args(annotation)[0] if get_origin(annotation) is list else None
            if isinstance(item, type) and issubclass(item, BaseModel):
                nested.append((item, f"{path}[]."))  # a list of sections (routes): one table for its items
            if info.is_required():
                default = "**required**"
            elif info.default_factory is not None:
                default = f"`{info.default_factory()!r}`"  # type: ignore[call-arg]
            else:
                default = f"`{info.default!r}`" if info.default is not None else "`null`"
            env = ENV_PREFIX + path.upper().replace(".", "__")
            if get_origin(annotation) is dict:
                env += "__<PROPERTY>"
            if "[]" in path:
                env = ENV_PREFIX + path.split("[]", maxsplit=1)[0].upper()  # the whole list, as YAML
            description = (info.description or "").replace("|", "\\|")
            kind = _type_name(annotation)
            rows.append(f"| `{path}` | {kind} | {default} | `{env}` | {description} |")
        if rows:
            title = prefix.rstrip(".") or "(top level)"
            doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
            lines.extend([f"## `{title}`", "", doc, "", "| key | type | default | environment | meaning |"])
            lines.append("| --- | --- | --- | --- | --- |")
            lines.extend(rows)
            lines.append("")
        for sub, sub_prefix in nested:
            walk(sub, sub_prefix)

    walk(Config, "")
    lines.extend(
        ["## Renamed keys", "", "Old names still load, with a warning; the new names are above.", ""]
    )
    lines.extend(["| old name | new name |", "| --- | --- |"])
    lines.extend(f"| `{old}` | `{new}` |" for old, new in RENAMED_KEYS.items())
    lines.append("")
    return "\n".join(lines)
