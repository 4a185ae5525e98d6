"""The shape the code keeps (docs/architecture.md): no function longer than a screen. ruff
enforces the complexity limits (pyproject.toml); this checks what ruff cannot: length."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 80  # a function's code, its docstring not counted


def _long_functions(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            if (
                len(body) > 1
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body = body[1:]
            lines = node.end_lineno - body[0].lineno + 1 + (body[0].lineno > node.lineno)
            if lines > MAX_LINES:
                out.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_longer_than_a_screen(repo_root):
    long = _long_functions(repo_root / "scripts") + _long_functions(repo_root / "benchmarks")
    assert long == [], "\n".join(long)
