"""The library's import structure, read from its import statements: subpackages import only the layers
below them, only through their public faces (`__init__.py`), and nothing imports `cli`; notebooks and
the command line use public names only."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "emoclip_lib"
NOTEBOOKS = sorted((PKG.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BASE = {"errors", "io_utils", "metrics", "runtime", "workers"}  # top-level modules every layer may use
# subpackage -> the subpackages it may import (the direction data flows)
ALLOWED: dict[str, set[str]] = {
    "data": set(),
    "captions": {"data"},
    "synth": {"data"},
    "model": {"data"},
    "features": {"data", "model"},
    "train": {"data", "model", "features", "synth"},
    "zeroshot": {"data", "model", "features"},
    "downstream": {"data", "model", "features"},
    "pipeline": {"data", "captions", "synth", "model", "features", "train", "zeroshot", "downstream"},
    "cli": {"data", "captions", "synth", "model", "features", "train", "zeroshot", "downstream", "pipeline"},
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line, target module parts under emoclip_lib, imported names) of every emoclip_lib import."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    package = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            out.append((node.lineno, target, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "emoclip_lib":
            out.append((node.lineno, node.module.split(".")[1:], [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "emoclip_lib":
                    out.append((node.lineno, alias.name.split(".")[1:], []))
    return out


def _layer(parts: list[str]) -> str:
    return parts[0] if len(parts) > 1 or (parts and parts[0] in ALLOWED) else "base"


def test_every_subpackage_is_in_the_layer_map():
    found = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert found == set(ALLOWED)
    top = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert top == BASE and len(top) + 1 <= 8  # at most 8 modules directly under emoclip_lib/


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_follow_the_layers(path):
    source = list(path.relative_to(PKG).with_suffix("").parts)
    layer = "top" if source == ["__init__"] else _layer(source)
    for line, target, names in _imports(path):
        where = f"{path.relative_to(PKG)}:{line}"
        if not target:  # `from .. import metrics`: modules of the top level
            assert set(names) <= BASE, f"{where}: imports {names} from emoclip_lib"
            continue
        dest = _layer(target)
        assert dest != "cli" or layer == "cli", f"{where}: nothing outside cli imports cli"
        if dest in ("base", layer):
            assert dest != "base" or target[0] in BASE, f"{where}: unknown module {target}"
            continue
        allowed = {"data", "model"} if layer == "top" else ALLOWED.get(layer, set())
        assert dest in allowed, f"{where}: {layer} may not import {dest} (allowed: {sorted(allowed)})"
        assert len(target) == 1, f"{where}: import {'.'.join(target)} through the face emoclip_lib.{dest}"


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        name = ".".join(path.relative_to(PKG).with_suffix("").parts)
        graph[name] = {".".join(t) for _, t, _ in _imports(path) if t} - {name}
    known = set(graph)

    def resolve(target: str) -> str:
        return target if target in known else f"{target}.__init__"

    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(resolve(t) for t in graph.get(node, ())):
            if nxt.endswith("__init__") and node.startswith(nxt[: -len("__init__")]):
                continue  # a module's own package face: the face imports it, not the other way round
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(stack + [node, nxt])}"
            if nxt in graph and not state.get(nxt):
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])


def _public(sub: str) -> set[str]:
    tree = ast.parse((PKG / sub / "__init__.py").read_text(encoding="utf-8"))
    return {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}


def test_faces_re_export_explicitly():
    for sub in ALLOWED:
        tree = ast.parse((PKG / sub / "__init__.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1, f"{sub}/__init__.py re-exports only its own modules"
                assert all(a.asname == a.name for a in node.names), f"{sub}: use `from .x import y as y`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_public_names_only(path):
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("emoclip_lib"):
                parts = node.module.split(".")[1:]
                assert len(parts) == 1, f"{path.name}: import from emoclip_lib.{parts[0]}, not {node.module}"
                if parts[0] in ALLOWED:
                    missing = {a.name for a in node.names} - _public(parts[0])
                    assert not missing, f"{path.name}: {sorted(missing)} are not public names of {node.module}"
                else:
                    assert parts[0] in BASE, f"{path.name}: {node.module} is not a module of the library"
