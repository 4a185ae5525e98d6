"""What a rule's script imports: the modules named by its import statements and, through
them, by every scatlas module it reaches (imports inside functions included: a rule may
call them). Read from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO / "scripts"


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _guarded(node: ast.Try) -> bool:
    """A ``try`` whose handlers catch a failed import: what it imports is optional."""
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS for t in types):
            return True
    return False


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, package: list[str]):
        self.package = package
        self.required: set[str] = set()
        self.optional: set[str] = set()
        self._optional_depth = 0

    def _add(self, names: set[str]) -> None:
        (self.optional if self._optional_depth else self.required).update(names)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = _guarded(node)
        self._optional_depth += guarded
        for stmt in node.body:
            self.visit(stmt)
        self._optional_depth -= guarded
        for stmt in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        self._add({alias.name for alias in node.names})

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package[: len(self.package) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        # "from scatlas.x import y" may import the submodule scatlas.x.y
        self._add({module, *(f"{module}.{alias.name}" for alias in node.names)})


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Absolute module names imported by ``path``: (required, optional)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package: list[str] = []
    if path.is_relative_to(PACKAGE_ROOT):
        package = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts[:-1])
    collector = _ImportCollector(package)
    collector.visit(tree)
    return collector.required, collector.optional - collector.required


def _scatlas_file(module: str) -> Path | None:
    base = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path, *, optional: bool = False) -> dict[str, set[str]]:
    """Top-level third-party modules reached from ``script`` → the files that import them.

    ``optional=False``: the imports a rule needs (not those guarded by ``except
    ImportError``); ``optional=True``: only the guarded ones.
    """
    seen: set[Path] = set()
    todo = [script]
    found: dict[str, set[str]] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        required, guarded = _imports(path)
        for module in required | guarded:
            top = module.split(".")[0]
            if top == "scatlas":
                parts = module.split(".")
                for i in range(1, len(parts) + 1):  # the package __init__s run too
                    file = _scatlas_file(".".join(parts[:i]))
                    if file is not None:
                        todo.append(file)
            elif (
                top
                and top not in sys.stdlib_module_names
                and top != "__future__"
                and (module in guarded) == optional
            ):
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+):", re.M)


def _resolve(smk: Path, relative: str) -> str:
    return str((smk.parent / relative).resolve().relative_to(REPO))


def rule_envs_and_scripts() -> dict[str, tuple[str, str]]:
    """Rule name → (conda env file, script file), both relative to the repository."""
    out: dict[str, tuple[str, str]] = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in RULE.finditer(text)]
        for (start, name), nxt in zip(starts, [*starts[1:], (len(text), "")], strict=False):
            body = text[start : nxt[0]]
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', body)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            if env and script:
                out[name] = (_resolve(smk, env.group(1)), _resolve(smk, script.group(1)))
    return out
