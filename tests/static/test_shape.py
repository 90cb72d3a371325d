"""The shape of forwarder/: no function over :data:`MAX_FUNCTION_LINES` lines and no class over
:data:`MAX_CLASS_LINES`, so that each piece can be read whole and a new stage is a new named part, not a
longer one. A longer one is listed in :data:`ALLOWED` and says why in its own docstring (it contains
"on purpose"), where the next reader of the code sees it.

Lines are counted from the ``def``/``class`` line to the last line of the body, docstring, comments and
blank lines included (what a reader scrolls through).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tests.harness import REPO

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200
PACKAGE = REPO / "forwarder"

# "path::qualified.name" of the definitions allowed to be longer; each one's docstring says why.
ALLOWED = frozenset(
    {
        "forwarder/decode.py::Decoder._build",
        "forwarder/consume.py::KafkaConsumer",
        "forwarder/metrics.py::Metrics.__init__",
    }
)
REASON_MARK = "on purpose"

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Definition]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _definitions(node, name + ".")
        else:
            yield from _definitions(node, prefix)


def _lines(node: Definition) -> int:
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def _limit(node: Definition) -> int:
    return MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES


def _all_definitions() -> dict[str, Definition]:
    found: dict[str, Definition] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, node in _definitions(tree):
            found[f"{where}::{name}"] = node
    return found


def test_no_function_or_class_is_over_its_length_unless_allowed() -> None:
    over = [
        f"{key}: {_lines(node)} lines (limit {_limit(node)})"
        for key, node in _all_definitions().items()
        if _lines(node) > _limit(node) and key not in ALLOWED
    ]
    assert over == [], "split these into named parts, or list them in ALLOWED with a reason"


def test_every_allowed_one_exists_is_over_and_says_why() -> None:
    found = _all_definitions()
    for key in sorted(ALLOWED):
        assert key in found, f"{key}: gone; take it out of ALLOWED"
        node = found[key]
        assert _lines(node) > _limit(node), f"{key}: within the limit now; take it out of ALLOWED"
        doc = ast.get_docstring(node) or ""
        assert REASON_MARK in doc, f"{key}: its docstring must say why it is long ({REASON_MARK!r})"


def test_the_counter_sees_methods_and_nested_functions() -> None:
    tree = ast.parse("class A:\n    def f(self):\n        def g():\n            pass\n")
    assert [name for name, _ in _definitions(tree)] == ["A", "A.f", "A.f.g"]
