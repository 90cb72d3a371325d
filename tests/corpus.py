"""The poison corpus in tests/data/poison.jsonl: bad messages of many kinds, and valid edge cases."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "poison.jsonl"


@dataclass(frozen=True)
class Case:
    """One message of the corpus and what must become of it."""

    name: str
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    stage: str  # decode | validate | ok
    field: str  # what the dead-letter reason must name

    @property
    def bad(self) -> bool:
        """Whether it must be dead-lettered."""
        return self.stage != "ok"


def load_corpus() -> list[Case]:
    """Every case of the corpus file."""
    cases = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        row = json.loads(line)
        value: bytes | None
        if row.get("value_null"):
            value = None
        elif "value_b64" in row:
            value = base64.b64decode(row["value_b64"])
        else:
            value = row["value"].encode("utf-8")
        pad = row.get("pad")
        if pad and value is not None:
            filler = pad["char"].encode() * (pad["to"] - len(value) - len(pad["suffix"]))
            value += filler + pad["suffix"].encode()
        headers: list[tuple[str, str | bytes | None]] = [
            (name, base64.b64decode(data)) for name, data in row.get("headers", [])
        ]
        cases.append(Case(row["name"], value, headers, row["stage"], row["field"]))
    return cases
