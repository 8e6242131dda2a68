"""The code's shape: small modules and functions, no import cycles, no imports hidden inside
functions (except the optional libraries a backend or benchmark needs when it runs)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"benchmark": "robbench", "models": "robbench.models", "attacks": "robbench.attacks",
            "models/defenses": "robbench.defenses"}
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 80
# Optional dependencies, imported where they are used so that the core install needs none.
LAZY_IMPORTS = {"pytorch_optimizer", "robustbench"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if folder == "models" and path.is_relative_to(ROOT / "models" / "defenses"):
                continue  # its own package, robbench.defenses
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def test_no_module_in_benchmark_is_over_350_lines_and_no_function_over_80():
    long_modules, long_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if path.is_relative_to(ROOT / "benchmark") and len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and path.is_relative_to(ROOT / "benchmark"):
                    long_functions.append(f"{name}.{node.name} ({length} lines)")
    assert long_modules == [] and long_functions == []


def _imports(tree: ast.AST, top_level: bool) -> list[str]:
    out = []
    body = tree.body if top_level else [n for f in ast.walk(tree)
                                        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                                        for n in ast.walk(f)]
    for node in body:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_no_import_cycles_among_robbench_modules():
    mods = modules()
    graph = {}
    for name, path in mods.items():
        targets = set()
        for imported in _imports(ast.parse(path.read_text()), top_level=True):
            while imported and imported not in mods:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    seen, stack, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert cycles == []


def test_no_imports_inside_functions_but_optional_libraries():
    hidden = []
    for name, path in modules().items():
        for imported in _imports(ast.parse(path.read_text()), top_level=False):
            if imported.split(".")[0] not in LAZY_IMPORTS:
                hidden.append(f"{name}: {imported}")
    assert hidden == []
