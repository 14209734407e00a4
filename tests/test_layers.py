"""The layer contract of DESIGN.md decision 10, checked on the source with `ast` (no imports run).

    core -> models -> inference -> training -> evaluation -> cli

A module may import its own layer and the layers before it, never one after it; this holds for
every import, at module level or inside a function. Module-level imports between audiolm
modules form no cycle. Inside models/, a model (codec, semantic, lm, wavenet) imports no other
model. An import inside a function carries a comment saying why it is there (an optional
dependency, start-up time). There is no list of exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiolm"
LAYERS = ("core", "models", "inference", "training", "evaluation", "cli")
TOP = len(LAYERS)  # audiolm/__init__.py and __main__.py sit above every layer


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return TOP
    return LAYERS.index(parts[1])


def _model(module: str) -> str | None:
    """The model package of a module under audiolm.models (codec, semantic, lm, wavenet)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "models" else None


class _Imports(ast.NodeVisitor):
    """Every audiolm import of one module: (target module, line, inside a function?)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int, bool]] = []
        self.local: list[tuple[int, str]] = []  # every in-function import (any module): (line, name)
        self.depth = 0

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target: str, line: int) -> None:
        if target == "audiolm" or target.startswith("audiolm."):
            self.found.append((target, line, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)
        if self.depth:
            self.local.append((node.lineno, node.names[0].name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            self._add(sub if sub in MODULES else module, node.lineno)
        if self.depth:
            self.local.append((node.lineno, module))


def _scan() -> dict[str, _Imports]:
    scans = {}
    for module, path in MODULES.items():
        scan = _Imports(module, path.name == "__init__.py")
        scan.visit(ast.parse(path.read_text(), str(path)))
        scans[module] = scan
    return scans


SCANS = _scan()


def test_every_module_is_in_a_layer():
    outside = [m for m in MODULES if _layer(m) == TOP and m not in ("audiolm", "audiolm.__main__")]
    assert not outside, f"modules outside the layers {LAYERS}: {outside}"


def test_imports_follow_the_layer_order():
    wrong = []
    for module, scan in SCANS.items():
        for target, line, local in scan.found:
            where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"
            if _layer(target) > _layer(module):
                wrong.append(
                    f"{where} ({LAYERS[_layer(module)] if _layer(module) < TOP else 'top'}) imports {target}"
                    f"{' inside a function' if local else ''}"
                )
            elif _model(module) and _model(target) and _model(module) != _model(target):
                wrong.append(f"{where}: model {_model(module)} imports model {_model(target)} ({target})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {
        m: sorted({t for t, _, local in s.found if not local and t in MODULES and t != m}) for m, s in SCANS.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    assert not cycles, "module-level import cycles:\n" + "\n".join(cycles)


def test_imports_inside_functions_say_why():
    silent = []
    for module, scan in SCANS.items():
        lines = MODULES[module].read_text().splitlines()
        for line, name in scan.local:
            text, above = lines[line - 1], lines[line - 2].strip() if line > 1 else ""
            if "#" not in text and not above.startswith("#"):
                silent.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not silent, "imports inside functions without a '# reason' comment:\n" + "\n".join(silent)
