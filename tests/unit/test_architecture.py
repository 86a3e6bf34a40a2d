"""The shape of the house, checked: which package may import which, no import circles, and
rooms small enough to read (modules and functions). Static: the source is parsed, nothing
is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "model", "training", "storage")
# Which project packages each package may import (DESIGN.md: storage and model are leaves,
# training uses them, the bot uses everything).
ALLOWED = {
    "storage": set(),
    "model": set(),
    "training": {"model", "storage"},
    "bot": {"model", "storage", "training"},
}
# Only the Telegram front talks Telegram.
TELEGRAM_PACKAGES = ("bot",)
# "About 400": a room a reader holds in their head; a little over is tolerated.
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(REPO).with_suffix("").parts)
            yield dotted.removesuffix(".__init__"), path


def _imports(module: str, path: Path) -> Iterator[Import]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:
                # ``from model.asr import convert`` imports the module model.asr.convert.
                yield Import(module, f"{prefix}.{alias.name}", node.lineno)


MODULES = dict(_modules())
IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _resolve(target: str) -> str | None:
    """The project module an import names (a module, or the module holding a name)."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        target = _resolve(imp.target)
        if target is not None and target != imp.module:
            graph[imp.module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_the_project() -> None:
    assert len(MODULES) > 60
    assert _resolve("model.asr.audio.decode_audio") == "model.asr.audio"
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_circles() -> None:
    # Lazy (function-level) imports count too: a circle hidden in a function is still one.
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_their_layer_allows(package: str) -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if imp.module.split(".")[0] == package
        and imp.target.split(".")[0] in PACKAGES
        and imp.target.split(".")[0] not in ALLOWED[package] | {package}
    ]
    assert wrong == []


def test_only_the_front_imports_telegram() -> None:
    wrong = [
        f"{imp.module}:{imp.line}"
        for imp in IMPORTS
        if imp.target.split(".")[0] == "telegram"
        and imp.module.split(".")[0] not in TELEGRAM_PACKAGES
    ]
    assert wrong == []


def test_modules_stay_readable() -> None:
    long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_functions_stay_readable() -> None:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []
